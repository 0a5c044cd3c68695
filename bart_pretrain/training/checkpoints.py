"""Writing checkpoints: atomic, finite-only writes (a Lightning ``CheckpointIO``), the periodic + final checkpoint
callback, and :class:`StopOnSignal` (SIGTERM/SIGINT: a checkpoint at the end of the current step, then stop).
Lightning's own ``TorchCheckpointIO`` renames through an fsspec transaction but never fsyncs; ours writes a temporary
sibling, fsyncs, renames (``bart_pretrain.io.atomic_open``), and refuses to write NaN/inf weights. Reading them back
for inference is ``bart_pretrain.loading`` (Lightning-free).
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from bart_pretrain.errors import Interrupted, UserError
from bart_pretrain.io import atomic_open, clean_stale_tmp
from bart_pretrain.training.sharding import remove_partial


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

    def load_checkpoint(self, path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Lightning's loading, with a file that is not a checkpoint (truncated, random bytes, text) named in one line
        instead of torch's words alone."""
        if not os.path.isfile(path):
            what = "is a directory, not a checkpoint file" if os.path.isdir(path) else "no such file"
            raise UserError(f"--ckpt_path {path}: {what}")
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch.load's words for others vary
            size = os.path.getsize(path)
            kind = "an empty file" if size == 0 else f"{size} bytes that are not a zip archive (truncated, or not one)"
            raise UserError(f"--ckpt_path {path}: not a readable torch checkpoint: {kind}")
        try:
            return super().load_checkpoint(path, *args, **kwargs)
        except (
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            UnicodeDecodeError,
            IndexError,
        ) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"--ckpt_path {path}: not a readable torch checkpoint ({reason})") from e


class PretrainCheckpoint(ModelCheckpoint):
    """``last.ckpt`` in ``dirpath``, rewritten every ``every_n_train_steps`` optimizer steps and at the end of
    training; ``--ckpt_path last`` finds it. Keeps no other checkpoint unless ``save_top_k`` says so. At set-up it
    removes the temporary files killed writes left in ``dirpath`` and its parent (the run directory), and an
    unfinished sharded ``last.ckpt.partial``."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 500, save_top_k: int = 0, **kwargs: Any):
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps, save_top_k=save_top_k, **kwargs)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath:  # what a killed write of last.ckpt, the report, ... left
            for directory in (Path(self.dirpath), Path(self.dirpath).parent):
                clean_stale_tmp(directory)
            partial = remove_partial(self.last_path)  # a sharded save of last.ckpt that was killed
            if partial is not None:
                print(f"removed {partial}: an interrupted write of the sharded checkpoint {self.last_path}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step
        super().on_train_end(trainer, pl_module)

    @property
    def last_path(self) -> str:
        return os.path.join(self.dirpath or ".", self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)


class StopOnSignal(pl.Callback):
    """SIGTERM (what schedulers send before a kill) or SIGINT (Ctrl+C) during training: finish the current optimizer
    step, write every checkpoint callback's ``last.ckpt`` as a periodic save at that step would (so a resume continues
    exactly there), then raise :class:`~bart_pretrain.errors.Interrupted` (exit code 143 or 130). A second SIGINT
    stops at once, without a checkpoint. Under DDP every rank stops at the same step (any rank's signal counts)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, resume_hint: str = "resume with --ckpt_path last"):
        self.resume_hint = resume_hint
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._step = -1

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # Ctrl+C twice: stop now
        self.signum = signum  # acted on at the end of the step (a handler must not print or save mid-step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Installed here, after Lightning's own SIGTERM handler (which would stop mid-epoch without a checkpoint, exit
        # status 0); the DataLoader workers forked after this inherit the handler, so a Ctrl+C reaching them too only
        # sets their (unused) copy of the flag.
        self._step = trainer.global_step
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step == self._step:
            return  # inside a gradient-accumulation window: stop only where a periodic checkpoint could be written
        self._step = trainer.global_step
        if not trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False):
            return
        signum = self.signum or signal.SIGTERM  # another rank's signal
        saved = []
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.save_last:
                callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))
                saved.append(callback.last_model_path)
        self.restore()
        where = f"saved {', '.join(saved)}; {self.resume_hint}" if saved else "no checkpoint callback: nothing saved"
        raise Interrupted(signum, f"stopped by {signal.Signals(signum).name} after step {trainer.global_step}: {where}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.restore()

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`on_train_start`."""
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
        self._previous = {}
