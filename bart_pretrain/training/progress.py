"""The training progress bar: optimizer steps out of ``--trainer.max_steps`` for a run bounded by steps.

Lightning's bars count batches of the current epoch and, with ``max_epochs=-1`` (what ``max_steps`` alone implies),
read ``Epoch 0/-2``. Ours shows ``step N/max_steps`` whenever the run ends at ``max_steps``; otherwise it is
Lightning's own. Rich when installed (Lightning's default), else tqdm.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import _RICH_AVAILABLE

RICH_AVAILABLE = bool(_RICH_AVAILABLE)
"""Whether ``rich`` is installed (then Lightning's default bar, and ours, is rich's)."""


def bounded_by_steps(trainer: pl.Trainer) -> bool:
    """True when ``max_steps`` ends the run (no epoch limit)."""
    return trainer.max_steps is not None and trainer.max_steps > 0 and trainer.max_epochs in (None, -1)


class StepRichProgressBar(RichProgressBar):
    """Rich bar whose training task counts optimizer steps up to ``max_steps`` (see the module docstring)."""

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if bounded_by_steps(self.trainer) else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if not bounded_by_steps(self.trainer):
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}, step':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if bounded_by_steps(trainer):  # a new epoch (or a resumed run) continues the count
            self._update(self.train_progress_bar_id, trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kw: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kw)
        if bounded_by_steps(trainer):
            self._update(self.train_progress_bar_id, trainer.global_step)


class StepTQDMProgressBar(TQDMProgressBar):
    """tqdm bar counting optimizer steps up to ``max_steps`` (see the module docstring)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if bounded_by_steps(trainer):
            bar = self.train_progress_bar
            bar.reset(total=trainer.max_steps)
            bar.n = trainer.global_step
            bar.set_description(f"Epoch {trainer.current_epoch}, step")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kw: Any) -> None:
        if not bounded_by_steps(trainer):
            return super().on_train_batch_end(trainer, pl_module, *args, **kw)
        n = trainer.global_step
        if self._should_update(n, trainer.max_steps):
            self.train_progress_bar.n = n
            self.train_progress_bar.refresh()
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


def step_progress_bar() -> pl.Callback:
    """The bar Lightning would pick (rich if installed, else tqdm), counting steps."""
    return StepRichProgressBar() if RICH_AVAILABLE else StepTQDMProgressBar()


def with_progress_bar(trainer_config: dict, callbacks: list) -> list:
    """``callbacks`` plus :func:`step_progress_bar` unless the run disables the bar or brings its own."""
    if trainer_config.get("enable_progress_bar") is False or any(
        isinstance(c, pl.callbacks.ProgressBar) for c in callbacks
    ):
        return callbacks
    return [*callbacks, step_progress_bar()]
