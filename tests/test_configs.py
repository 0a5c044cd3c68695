"""Every shipped YAML under configs/ parses: run configs through their CLI parser (with --print_config, which
validates types and rejects unknown keys without building anything), model and noise configs through their loaders."""

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _yamls(kind: str) -> list[Path]:
    return sorted((CONFIGS / kind).glob("*.yaml"))


def test_every_yaml_under_configs_is_covered_by_a_loader_test():
    covered = {p for kind in ("pretrain", "finetune", "model", "noise", "ablation") for p in _yamls(kind)}
    assert set(CONFIGS.rglob("*.yaml")) == covered


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
        assert yaml.safe_load(Path(cfg["model"]["model_config"]).read_text())["dropout"] == 0.1


def test_pretrain_cli_rejects_an_unknown_key(tmp_path, capsys):
    from bart_pretrain.commands.pretrain import main

    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "pretrain" / "tiny.yaml").read_text() + "\nmodel_typo: 1\n")
    with pytest.raises(SystemExit) as exit_:
        main(["-c", str(bad), "--print_config"])
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
    monkeypatch.chdir(tmp_path)  # a shipped name on the command line is found from any directory
    with pytest.raises(SystemExit) as exit_:
        main(["--model.model_config", str(path.relative_to(CONFIGS.parent)), "--print_config"])
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["model_config"]
    assert printed.pop("vocab_size", None) is None and printed == fields
