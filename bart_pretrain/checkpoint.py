"""Checkpoints: atomic, finite-only writes (a Lightning ``CheckpointIO``), the periodic + final checkpoint callback,
and :func:`load_bart` for our Lightning ``.ckpt`` files or a transformers BART directory.

Lightning's own ``TorchCheckpointIO`` renames through an fsspec transaction but never fsyncs; ours writes a
temporary sibling, fsyncs, renames (``bart_pretrain.io.atomic_open``), and refuses to write NaN/inf weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from bart_pretrain.io import atomic_open


class NonFiniteWeightsError(RuntimeError):
    """A checkpoint would hold NaN/inf weights; it is not written."""


def _nonfinite_tensors(state: dict[str, Any]) -> list[str]:
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not v.isfinite().all()]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the target directory, fsync, rename: a crash mid-write leaves the
    previous checkpoint intact. Raises :class:`NonFiniteWeightsError` instead of writing non-finite weights."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        bad = _nonfinite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            step = checkpoint.get("global_step")
            raise NonFiniteWeightsError(f"refusing to write {path} at step {step}: non-finite values in {bad[:5]}")
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)


class PretrainCheckpoint(ModelCheckpoint):
    """``last.ckpt`` in ``dirpath``, rewritten every ``every_n_train_steps`` optimizer steps and at the end of
    training; ``--ckpt_path last`` finds it. Keeps no other checkpoint unless ``save_top_k`` says so."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 500, save_top_k: int = 0, **kwargs: Any):
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps, save_top_k=save_top_k, **kwargs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step
        super().on_train_end(trainer, pl_module)

    @property
    def last_path(self) -> str:
        return os.path.join(self.dirpath or ".", self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)


def _load_ckpt(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # Lightning state may hold plain Python objects; our own checkpoints are trusted
        return torch.load(path, map_location="cpu", weights_only=False)


def load_bart(path: str | os.PathLike):
    """``(Bart, Tokenizer | None)`` from a Lightning checkpoint written by our modules (hyper-parameters
    ``model_config`` and ``tokenizer_path``, weights under ``model.``) or from a transformers BART directory."""
    from bart_pretrain.model import Bart, BartConfig
    from bart_pretrain.tokenizer import Tokenizer

    path = Path(path)
    if path.is_dir():
        from bart_pretrain.hf import load_hf

        model = load_hf(path)
        has_tok = (path / "tokenizer.json").exists() or (path / "vocab.json").exists()
        return model, Tokenizer.from_file(path) if has_tok else None
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = _load_ckpt(path)
    hparams = ckpt.get("hyper_parameters", {})
    if "model_config" not in hparams or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a bart-pretrain checkpoint (no hyper_parameters.model_config / state_dict)")
    config = BartConfig.from_dict(dict(hparams["model_config"]))
    model = Bart(config)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the saved model_config: {e}") from e
    tok_path = hparams.get("tokenizer_path")
    tokenizer = Tokenizer.from_file(tok_path) if tok_path and os.path.exists(tok_path) else None
    if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"{path}: tokenizer {tok_path} has {tokenizer.vocab_size} tokens, the model {config.vocab_size}"
        )
    return model, tokenizer
