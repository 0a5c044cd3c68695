"""Every shipped YAML under configs/ parses with the parser of the command that reads it: run configs with
--print_config (which validates types and rejects unknown keys without building anything), model presets as
`pretrain --model.model_config`, noise recipes as `noise-preview --noise` (then built), ablation configs by `ablate`'s
loader."""

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _yamls(kind: str) -> list[Path]:
    return sorted((CONFIGS / kind).glob("*.yaml"))


KINDS = ("pretrain", "finetune", "model", "noise", "ablation")
"""The folders under configs/, each parsed by a test below."""


def test_every_yaml_under_configs_is_covered_by_a_loader_test():
    covered = {p for kind in KINDS for p in _yamls(kind)}
    assert set(CONFIGS.rglob("*.yaml")) == covered


@pytest.mark.parametrize("path", _yamls("noise"), ids=lambda p: p.stem)
def test_noise_recipes_parse_through_noise_preview(path):
    from bart_pretrain.commands.noise_preview import parser
    from bart_pretrain.data.noise_config import load_noise

    p = parser()
    args = p.parse_args(["--noise", str(path.relative_to(CONFIGS.parent)), "--text", "A text."])
    pipeline = load_noise(p.instantiate_classes(args).noise)
    assert len(pipeline) == len(yaml.safe_load(path.read_text())["noises"])


# `ablate`'s parser (jsonargparse, as every command's): load_config parses the file and checks its recipes and cells.
@pytest.mark.parametrize("path", _yamls("ablation"), ids=lambda p: p.stem)
def test_ablation_configs_load(path):
    from bart_pretrain.commands.ablation_config import load_config

    config = load_config(path)
    assert config.recipes


@pytest.mark.parametrize("path", _yamls("pretrain"), ids=lambda p: p.stem)
def test_pretrain_configs_parse_through_the_cli(path, capsys):
    from bart_pretrain.commands.pretrain import main

    with pytest.raises(SystemExit) as exit_:
        main(["-c", str(path), "--print_config"])
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "tokenizer_path" not in printed["model"] and printed["data"]["tokenizer_path"]  # linked, not copied
    assert printed["trainer"]["max_steps"] > 0


def test_shipped_pretrain_recipes_follow_the_paper_on_gpus():
    for name in ("base", "large"):
        cfg = yaml.safe_load((CONFIGS / "pretrain" / f"{name}.yaml").read_text())
        assert cfg["model"]["optim"]["lr"] == 4e-4 and cfg["model"]["optim"]["schedule"] == "polynomial"
        assert cfg["model"]["optim"]["warmup_steps"] > 0 and cfg["data"]["max_length"] == 512
        assert cfg["trainer"]["precision"] == "bf16-mixed"
        preset = CONFIGS / "pretrain" / cfg["model"]["model_config"]  # relative to the config file naming it
        assert yaml.safe_load(preset.read_text())["dropout"] == 0.1


def test_pretrain_cli_rejects_an_unknown_key(tmp_path, capsys):
    from bart_pretrain.commands.pretrain import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("model_typo: 1\n")
    with pytest.raises(SystemExit) as exit_:
        main(["-c", str(CONFIGS / "pretrain" / "tiny.yaml"), "-c", str(bad), "--print_config"])
    assert exit_.value.code not in (0, None)
    assert "model_typo" in capsys.readouterr().err


@pytest.mark.parametrize("path", _yamls("finetune"), ids=lambda p: p.stem)
def test_finetune_configs_parse_through_the_cli(path):
    from bart_pretrain.commands.finetune import main

    with pytest.raises(SystemExit) as exit_:
        main(["-c", str(path), "--print_config"])
    assert exit_.value.code in (0, None)


@pytest.mark.parametrize("path", _yamls("model"), ids=lambda p: p.stem)
def test_model_configs_load_through_the_cli_as_typed_fields(path, capsys, tmp_path, monkeypatch):
    from bart_pretrain.commands.pretrain import main

    fields = yaml.safe_load(path.read_text())
    assert "vocab_size" not in fields  # linked from the tokenizer
    monkeypatch.chdir(CONFIGS.parent)  # a relative path on the command line: relative to the working directory
    with pytest.raises(SystemExit) as exit_:
        main(["--model.model_config", str(path.relative_to(CONFIGS.parent)), "--print_config"])
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["model_config"]
    assert printed.pop("vocab_size", None) is None and printed == fields
