"""What a checkpoint carries and how it is read: the tokenizer travels inside it (bytes, sha256, absolute path), so
`export-hf` works from any directory; loading is `weights_only=True` with an allow-list, never a pickle fallback."""

from __future__ import annotations

import contextlib
import io
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pretrain_world import make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.io import HOST
from bart_pretrain.loading import TOKENIZER_KEY, load_model, read_checkpoint
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.optim import OptimConfig
from bart_pretrain.tokenizer import Tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def relative_run(tmp_path_factory) -> Path:
    """A 2-step pretraining run started in its world's directory with a RELATIVE tokenizer path, as `make pretrain`
    records data/tokenizer/tokenizer.json."""
    root = tmp_path_factory.mktemp("relative")
    config = make_world(root, trainer__max_steps=2, checkpoint_every=2, data__tokenizer_path="tokenizer.json")
    # What an earlier run killed while writing last.ckpt left behind: a temporary file of a process that is gone.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = root / "run" / "checkpoints" / f".last.ckpt.{HOST}-{gone.pid}.x1y2z3a4.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            assert cli_main(["pretrain", "-c", str(config), "--report", "false"]) == 0
    finally:
        mp.undo()
    (root / "stderr.txt").write_text(err.getvalue())
    return root


def test_a_run_removes_what_a_killed_write_left_in_its_run_directory_saying_so(relative_run):
    assert not list((relative_run / "run").rglob(".*.tmp"))
    assert "a temporary file an interrupted write of last.ckpt left behind" in (relative_run / "stderr.txt").read_text()


def test_a_checkpoint_carries_its_tokenizer_with_absolute_path_and_sha256(relative_run):
    ckpt = read_checkpoint(relative_run / "run" / "checkpoints" / "last.ckpt")
    tok = Tokenizer.from_file(relative_run / "tokenizer.json")
    record = ckpt[TOKENIZER_KEY]
    assert record["path"] == str((relative_run / "tokenizer.json").resolve())
    assert record["sha256"] == tok.fingerprint() == Tokenizer.from_str(record["json"]).fingerprint()
    assert ckpt["hyper_parameters"]["tokenizer_path"] == record["path"]


def test_export_hf_from_another_directory_after_the_tokenizer_moved_keeps_the_tokenizer(
    relative_run, tmp_path, monkeypatch, capsys
):
    transformers = pytest.importorskip("transformers")
    ckpt = tmp_path / "copy.ckpt"
    ckpt.write_bytes((relative_run / "run" / "checkpoints" / "last.ckpt").read_bytes())
    original = Tokenizer.from_file(relative_run / "tokenizer.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the recorded relative path means nothing here
    (relative_run / "tokenizer.json").rename(relative_run / "moved.json")
    try:
        assert cli_main(["export-hf", str(ckpt), "out"]) == 0
    finally:
        (relative_run / "moved.json").rename(relative_run / "tokenizer.json")
    assert "sha256" in capsys.readouterr().out
    theirs = transformers.AutoTokenizer.from_pretrained(elsewhere / "out")
    text = "The kernel module reads a file."
    assert theirs(text)["input_ids"] == [0, *original.encode(text), 2]
    assert len(theirs) == original.vocab_size


def _legacy(relative_run: Path, tmp_path: Path) -> Path:
    """The run's checkpoint as written before checkpoints carried their tokenizer: a relative path only."""
    ckpt = torch.load(relative_run / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    del ckpt[TOKENIZER_KEY]
    ckpt["hyper_parameters"]["tokenizer_path"] = "tokenizer.json"
    torch.save(ckpt, tmp_path / "legacy.ckpt")
    return tmp_path / "legacy.ckpt"


def test_export_hf_of_a_checkpoint_without_a_findable_tokenizer_fails_in_one_line(
    relative_run, tmp_path, monkeypatch, capsys
):
    legacy = _legacy(relative_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["export-hf", str(legacy), "out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"the one it records, 'tokenizer.json', is not at {tmp_path.resolve() / 'tokenizer.json'}" in err
    assert "pass --tokenizer" in err and not (tmp_path / "out").exists()
    assert cli_main(["export-hf", str(legacy), "out", "--tokenizer", str(relative_run / "tokenizer.json")]) == 0
    assert Tokenizer.from_file(tmp_path / "out").vocab_size == 400


def test_export_hf_refuses_a_tokenizer_other_than_the_one_the_checkpoint_carries(relative_run, tmp_path, capsys):
    other = train_tokenizer(["Alpha beta gamma. Delta epsilon zeta eta theta."] * 20, vocab_size=300)
    other.save(tmp_path / "other.json")
    ckpt = relative_run / "run" / "checkpoints" / "last.ckpt"
    assert cli_main(["export-hf", str(ckpt), str(tmp_path / "out"), "--tokenizer", str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err
    assert "is not the tokenizer this model was trained with" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def _minimal_checkpoint(**extra) -> dict:
    shape = dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2)
    config = BartConfig(vocab_size=300, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32, **shape)
    state = {f"model.{k}": v for k, v in Bart(config).state_dict().items()}
    return {"state_dict": state, "hyper_parameters": {"model_config": config.to_dict()}, **extra}


class _Payload:
    """Unpickling this runs code: it creates the file named by ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_loading_a_checkpoint_never_unpickles_objects_outside_the_allow_list(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save(_minimal_checkpoint(extra=_Payload(str(marker))), tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match=r"evil\.ckpt: holds pickled objects .*pathlib.*refusing to unpickle"):
        load_model(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_the_allow_list_admits_the_config_dataclasses_modules_save(tmp_path):
    hparams = {"optim": OptimConfig(lr=1e-4), "generation": GenerationConfig(num_beams=2, max_length=9)}
    ckpt = _minimal_checkpoint()
    ckpt["hyper_parameters"].update(hparams)
    torch.save(ckpt, tmp_path / "ok.ckpt")
    with pytest.raises(pickle.UnpicklingError):  # torch's plain weights_only load refuses them ...
        torch.load(tmp_path / "ok.ckpt", weights_only=True)
    loaded = load_model(tmp_path / "ok.ckpt")  # ... our allow-list does not
    assert loaded.generation == {**GenerationConfig().__dict__, "num_beams": 2, "max_length": 9}
    assert loaded.tokenizer is None and "records no tokenizer" in loaded.tokenizer_note


def test_checkpoints_that_pickled_optim_config_under_its_former_module_still_load(tmp_path, monkeypatch):
    import bart_pretrain.training

    # As a checkpoint written while OptimConfig lived in bart_pretrain/training.py pickles it.
    monkeypatch.setattr(OptimConfig, "__module__", "bart_pretrain.training")
    monkeypatch.setattr(bart_pretrain.training, "OptimConfig", OptimConfig, raising=False)
    ckpt = _minimal_checkpoint()
    ckpt["hyper_parameters"]["optim"] = OptimConfig(lr=1e-4)
    torch.save(ckpt, tmp_path / "old.ckpt")
    monkeypatch.undo()
    assert "bart_pretrain.training.OptimConfig" in torch.serialization.get_unsafe_globals_in_checkpoint(
        tmp_path / "old.ckpt"
    )
    assert read_checkpoint(tmp_path / "old.ckpt")["hyper_parameters"]["optim"] == OptimConfig(lr=1e-4)


def test_a_truncated_checkpoint_is_a_one_line_error(tmp_path):
    torch.save(_minimal_checkpoint(), tmp_path / "whole.ckpt")
    (tmp_path / "cut.ckpt").write_bytes((tmp_path / "whole.ckpt").read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.ckpt: not a readable torch checkpoint"):
        load_model(tmp_path / "cut.ckpt")
