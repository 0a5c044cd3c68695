"""Relative paths in a config resolve beside that config (shipped configs: in the repository), so a config works from
any directory; a path on the command line or from a default is looked for in the working directory, and an error
for a missing one says where it was looked for."""

from __future__ import annotations

import shutil

import yaml
from pretrain_world import make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.commands.pretrain import make_cli
from bart_pretrain.data.noise_config import load_noise
from bart_pretrain.paths import REPO, candidates, resolve_input


def test_a_shipped_config_works_from_another_directory(tmp_path, monkeypatch):
    world = tmp_path / "world"
    make_world(world)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = ["--data.train_files", str(world / "train.jsonl"), "--data.val_files", str(world / "validation.jsonl")]
    data += ["--data.tokenizer_path", str(world / "tokenizer.json"), "--data.max_length", "64"]
    cli = make_cli(["-c", str(REPO / "configs" / "pretrain" / "tiny.yaml"), "--run_dir", str(tmp_path / "run"), *data])
    assert cli.datamodule.noise == load_noise(REPO / "configs" / "noise" / "bart_large.yaml")
    preset = yaml.safe_load((REPO / "configs" / "model" / "tiny.yaml").read_text())  # model_config: configs/model/...
    assert {k: cli.config["model.model_config"][k] for k in preset} == preset
    assert cli.model.model.config.d_model == 128 and cli.model.model.config.vocab_size == 400


def test_relative_paths_in_a_config_file_are_looked_for_beside_it(tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    config = yaml.safe_load(make_world(exp).read_text())
    shutil.copy(REPO / "configs" / "noise" / "token_masking.yaml", exp / "my_noise.yaml")
    config["model"]["model_config"] = "model.yaml"
    config["data"].update(train_files="train.jsonl", tokenizer_path="tokenizer.json", noise="my_noise.yaml")
    config["data"]["val_files"] = "validation.jsonl"
    (exp / "mine.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "validation.jsonl").write_text((exp / "validation.jsonl").read_text())
    monkeypatch.chdir(elsewhere)
    # --data.val_files on the command line: relative to the working directory, not to the config file
    cli = make_cli(
        ["-c", str(exp / "mine.yaml"), "--run_dir", str(tmp_path / "run"), "--data.val_files", "validation.jsonl"]
    )
    data = cli.datamodule
    assert (data.train_files, data.tokenizer_path) == (str(exp / "train.jsonl"), str(exp / "tokenizer.json"))
    assert data.noise == load_noise(exp / "my_noise.yaml") != load_noise("bart_large")
    assert data.val_files == str(elsewhere / "validation.jsonl")
    assert cli.model.tokenizer_record["path"] == str(exp / "tokenizer.json")
    assert cli.model.model.config.d_model == yaml.safe_load((exp / "model.yaml").read_text())["d_model"] == 32


def test_a_missing_default_data_path_is_one_line_saying_where_it_was_looked_for(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["pretrain", "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bart-pretrain pretrain: error: tokenizer")
    assert f"looked for {tmp_path / 'data' / 'tokenizer' / 'tokenizer.json'}" in err and "make data" in err


def test_the_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "exp" / "mine.yaml"
    shipped = REPO / "configs" / "pretrain" / "tiny.yaml"
    assert candidates("data/x.jsonl", mine) == [tmp_path / "exp" / "data/x.jsonl", tmp_path / "data/x.jsonl"]
    assert candidates("data/x.jsonl", shipped)[:2] == [
        REPO / "configs" / "pretrain" / "data/x.jsonl",
        REPO / "data/x.jsonl",
    ]
    assert candidates("configs/noise/a.yaml", None) == [
        tmp_path / "configs/noise/a.yaml",
        REPO / "configs/noise/a.yaml",
    ]
    assert resolve_input("configs/noise/bart_large.yaml") == str(REPO / "configs" / "noise" / "bart_large.yaml")
    assert resolve_input("wikitext") == "wikitext"  # not a file anywhere: a dataset name, left alone
    assert resolve_input(["configs/noise/bart_large.yaml", "/abs.txt"])[1] == "/abs.txt"
