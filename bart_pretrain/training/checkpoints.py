"""Writing checkpoints: atomic, finite-only writes (a Lightning ``CheckpointIO``) and the periodic + final checkpoint
callback. Lightning's own ``TorchCheckpointIO`` renames through an fsspec transaction but never fsyncs; ours writes a
temporary sibling, fsyncs, renames (``bart_pretrain.io.atomic_open``), and refuses to write NaN/inf weights. Reading
them back is ``bart_pretrain.loading`` (Lightning-free).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from bart_pretrain.io import atomic_open, clean_stale_tmp


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
    training; ``--ckpt_path last`` finds it. Keeps no other checkpoint unless ``save_top_k`` says so. At set-up it
    removes the temporary files killed writes left in ``dirpath`` and its parent (the run directory)."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 500, save_top_k: int = 0, **kwargs: Any):
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps, save_top_k=save_top_k, **kwargs)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath:  # what a killed write of last.ckpt, the report, ... left
            for directory in (Path(self.dirpath), Path(self.dirpath).parent):
                clean_stale_tmp(directory)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step
        super().on_train_end(trainer, pl_module)

    @property
    def last_path(self) -> str:
        return os.path.join(self.dirpath or ".", self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
