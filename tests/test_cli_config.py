"""One config path: the model config and the noise recipe of the training commands are typed init args, so every
field shows in ``--help`` and ``--print_config`` and a dotted override reaches the built model; a preset or recipe
file named in a config file (``model_config: ../model/tiny.yaml``) is read relative to that file."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from pretrain_world import make_world

from bart_pretrain.commands import finetune, pretrain
from bart_pretrain.model import BartConfig
from bart_pretrain.paths import REPO
from noising import DocumentRotation, Pipeline, TokenMasking

FIELDS = [f.name for f in dataclasses.fields(BartConfig) if f.name != "vocab_size"]


def _exit_output(main, argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code or 0, out, err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return make_world(root), root


@pytest.mark.parametrize("command", [pretrain, finetune], ids=["pretrain", "finetune"])
def test_help_lists_every_model_config_field(command, capsys):
    code, out, _ = _exit_output(command.main, ["--help"], capsys)
    assert code == 0
    missing = [name for name in FIELDS if f"--model.model_config.{name} " not in out]
    assert not missing, f"not in --help: {missing}"
    assert "--model.model_config CONFIG" in out  # a preset file loads all of them
    folded = " ".join(out.split())  # help lines wrap at the terminal's width
    entry = r"(?<!\[)--model\.model_config\.{} (?:[A-Z_]+|\{{[a-z,]+\}}) (.*?)\(type: "  # the entry, not [--usage]
    described = {n: re.search(entry.format(n), folded) for n in FIELDS}
    undescribed = [n for n, m in described.items() if not (m and m.group(1).strip())]
    assert not undescribed, f"no description in --help (BartConfig's attribute docstrings): {undescribed}"
    assert "Width of every hidden state. (type: int" in folded


def test_pretrain_help_types_the_noise_recipe(capsys):
    code, out, _ = _exit_output(pretrain.main, ["--help"], capsys)
    out = " ".join(out.split())  # help lines wrap at the terminal's width
    assert code == 0 and "--data.noise CONFIG" in out
    assert "(type: list[Corruption], default: [{'class_path': 'noising.TextInfilling'," in out
    assert (
        "known subclasses: noising.Corruption, noising.Noise, noising.DocumentRotation, noising.RandomInsertion," in out
    )
    assert (
        "noising.Objective, noising.GapSentences, noising.PrefixLM, noising.T5SpanCorruption, noising.UL2Mixture" in out
    )
    code, out, _ = _exit_output(pretrain.main, ["--data.noise.noises.help", "TextInfilling"], capsys)
    out = " ".join(out.split())
    assert code == 0 and "--data.noise.noises.poisson_lambda POISSON_LAMBDA Mean of the Poisson span length" in out
    code, out, _ = _exit_output(pretrain.main, ["--data.noise.noises.help", "T5SpanCorruption"], capsys)
    out = " ".join(out.split())
    assert code == 0 and "--data.noise.noises.mean_span MEAN_SPAN Mean span length" in out


def test_a_dotted_model_config_override_changes_the_built_model(world, tmp_path):
    config, _ = world
    argv = ["-c", str(config), "--run_dir", str(tmp_path / "run"), "--model.model_config.d_model", "48"]
    cli = pretrain.make_cli([*argv, "--model.model_config.encoder_layers", "3"])
    built = cli.model.model
    assert built.config.d_model == 48 and len(built.encoder.layers) == 3
    assert built.shared.weight.shape == (400, 48)  # the vocabulary from the tokenizer
    assert built.config.decoder_layers == 1  # the rest from the config file's model.yaml
    assert cli.model.hparams["model_config"]["d_model"] == 48  # what the checkpoint records


def test_a_finetune_from_random_weights_builds_the_model_config_it_is_given(world, tmp_path):
    _, root = world
    cli = finetune.make_cli(
        ["--model.init_from", "null", "--model.tokenizer_path", str(root / "tokenizer.json"),
         "--model.model_config", "configs/model/tiny.yaml", "--model.model_config.d_model", "64",
         "--trainer.default_root_dir", str(tmp_path / "ft"), "--data.source", str(tmp_path)]
    )  # fmt: skip
    config = cli.model.model.config
    assert (config.d_model, config.encoder_layers, config.vocab_size) == (64, 2, 400)


def test_print_config_round_trips(tmp_path, capsys):
    overrides = ["--model.model_config.d_model", "64", "--data.noise.noises", "[{class_path: TokenMasking}]"]
    base = ["-c", str(REPO / "configs" / "pretrain" / "tiny.yaml"), *overrides, "--print_config"]
    code, first, _ = _exit_output(pretrain.main, base, capsys)
    assert code == 0
    printed = yaml.safe_load(first)
    assert printed["model"]["model_config"]["d_model"] == 64 and printed["model"]["model_config"]["encoder_layers"] == 2
    fields = {"ratio": 0.15, "whole_words": False, "random_ratio": 0.1, "keep_ratio": 0.0}  # every field, typed
    assert printed["data"]["noise"] == {"noises": [{"class_path": "noising.TokenMasking", "init_args": fields}]}
    (tmp_path / "printed.yaml").write_text(first)
    code, second, _ = _exit_output(pretrain.main, ["-c", str(tmp_path / "printed.yaml"), "--print_config"], capsys)
    assert code == 0 and second == first


def test_print_config_shows_an_objective_recipe_with_every_field_and_round_trips(tmp_path, capsys):
    base = ["-c", str(REPO / "configs" / "pretrain" / "tiny.yaml"), "--data.noise", "configs/noise/t5_spans.yaml"]
    code, first, _ = _exit_output(pretrain.main, [*base, "--print_config"], capsys)
    assert code == 0
    t5 = {"class_path": "noising.T5SpanCorruption", "init_args": {"ratio": 0.15, "mean_span": 3.0}}
    assert yaml.safe_load(first)["data"]["noise"] == {"noises": [t5]}
    (tmp_path / "printed.yaml").write_text(first)
    code, second, _ = _exit_output(pretrain.main, ["-c", str(tmp_path / "printed.yaml"), "--print_config"], capsys)
    assert code == 0 and second == first


def test_a_noise_recipe_given_inline_is_the_pipeline(world, tmp_path):
    config, _ = world
    recipe = "[{class_path: TokenMasking, init_args: {ratio: 0.2}}]"
    cli = pretrain.make_cli(["-c", str(config), "--run_dir", str(tmp_path / "run"), "--data.noise.noises", recipe])
    assert cli.datamodule.noise == Pipeline([TokenMasking(ratio=0.2)])
    argv = ["-c", str(config), "--run_dir", str(tmp_path / "run"), "--data.noise.noises+", "DocumentRotation"]
    assert pretrain.make_cli(argv).datamodule.noise.noises[-1] == DocumentRotation()  # appended to the config's


def test_a_noise_with_a_misspelled_key_is_a_usage_error(world, tmp_path, capsys):
    config, _ = world
    mine = yaml.safe_load(config.read_text())
    mine["data"]["noise"] = {"noises": [{"class_pth": "TokenMasking"}]}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    code, _, err = _exit_output(pretrain.main, ["-c", str(tmp_path / "mine.yaml"), "--print_config"], capsys)
    assert code == 2 and "class_pth" in err


def test_a_preset_file_named_in_a_config_file_is_read_beside_it_from_any_directory(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "exp" / "mine.yaml"
    mine.parent.mkdir()
    (mine.parent / "base.yaml").write_text((REPO / "configs" / "model" / "base.yaml").read_text())
    (mine.parent / "identity.yaml").write_text((REPO / "configs" / "noise" / "identity.yaml").read_text())
    mine.write_text("model:\n  model_config: base.yaml\ndata:\n  noise: identity.yaml\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, _ = _exit_output(pretrain.main, ["-c", str(mine), "--print_config"], capsys)
    assert code == 0
    printed = yaml.safe_load(out)
    preset = yaml.safe_load((REPO / "configs" / "model" / "base.yaml").read_text())
    assert {k: printed["model"]["model_config"][k] for k in preset} == preset
    assert printed["data"]["noise"] == {"noises": []}  # the identity recipe beside it, read like the preset


def test_a_missing_preset_file_is_one_line_naming_the_option_and_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _exit_output(pretrain.main, ["--model.model_config", "configs/model/huge.yaml"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("bart-pretrain pretrain: error: --model.model_config='configs/model/huge.yaml': no such file")


ARGPARSE_COMMANDS = ["summarize", "export-hf", "noise-preview", "train-tokenizer", "build-data"]
"""The commands that are not LightningCLIs (`ablate` aside: its own branch); each module has ``parser()``."""


@pytest.mark.parametrize("name", ARGPARSE_COMMANDS)
def test_every_command_lists_each_option_with_its_type_and_reads_a_config_file(name, capsys):
    import importlib

    from bart_pretrain.cli import SUBCOMMANDS

    parser = importlib.import_module(SUBCOMMANDS[name][0]).parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "-c CONFIG, --config CONFIG" in out and "--print_config" in out
    # one entry per option: "  --name METAVAR  help ... (type: ..., default: ...)"
    found = re.findall(r"^  (\S+)(.*?)(?=^  \S|\Z)", out, re.M | re.S)
    entries = {option.rstrip(","): " ".join(text.split()) for option, text in found}
    entries = {k: v for k, v in entries.items() if k not in ("-h", "-c", "--print_config") and ".help" not in k}
    keys = [k for k in parser.get_defaults().keys() if k != "config"]
    groups = {f"--{k.split('.')[0]}" for k in keys if "." in k} & set(entries)  # a typed group's file option
    expected = {f"--{k}" if f"--{k}" in entries else k for k in keys} | groups
    assert keys and sorted(entries) == sorted(expected)
    for option, text in entries.items():
        assert re.fullmatch(r"(--)?[a-z][a-z0-9_.]*", option), f"{name}: {option} is not spelled with underscores"
        assert option in groups or "type: " in text, f"{name} --help: {option} shows no type"


@pytest.mark.parametrize("command", [pretrain, finetune], ids=["pretrain", "finetune"])
def test_the_training_commands_spell_every_flag_with_underscores(command, capsys):
    code, out, _ = _exit_output(command.main, ["--help"], capsys)
    assert code == 0 and not re.findall(r"--[a-z0-9_.]+-[a-z]", out)


def test_a_config_file_sets_a_commands_options_and_its_paths_are_relative_to_it(tmp_path, monkeypatch, capsys):
    from bart_pretrain.cli import main as cli_main
    from bart_pretrain.tokenizer import Tokenizer

    exp = tmp_path / "exp"
    exp.mkdir()
    text = "The quick brown fox jumps over the lazy dog. It was not amused. Then it left for good."
    (exp / "corpus.txt").write_text("\n\n".join([text] * 30))
    (exp / "tokenizer.yaml").write_text("files: corpus.txt\nvocab_size: 300\nmin_frequency: 1\nout: tok\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli_main(["train-tokenizer", "-c", str(exp / "tokenizer.yaml")]) == 0
    # files: beside the config file; out: an output, relative to the working directory
    assert Tokenizer.from_file(tmp_path / "elsewhere" / "tok").vocab_size <= 300 and not (exp / "tok").exists()
    assert "trained on 30 documents" in capsys.readouterr().out
