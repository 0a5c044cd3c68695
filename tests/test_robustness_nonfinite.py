"""Non-finite loss, gradients or weights during `bart-pretrain pretrain`: detected, the run stops with a message naming
the step and the batch (epoch, batch position, sample indices), and no checkpoint on disk ever holds NaN/inf.

Faults are injected without touching the product: a huge learning rate (the loss overflows on its own), and two
callbacks given in the config (``trainer.callbacks``) that poison a gradient or a weight at a chosen step.
(test_pretrain.py covers a monkeypatched NaN loss and the ``--model.on_nonfinite skip`` policy.)
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pretrain_world import make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.training.checkpoints import NonFiniteWeightsError
from bart_pretrain.training.module import NonFiniteLossError


class NaNGradientAt(pl.Callback):
    """After the backward pass of optimizer step ``step``, one gradient becomes NaN (the loss stays finite)."""

    def __init__(self, step: int):
        self.step = step

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == self.step:
            next(p for p in pl_module.parameters() if p.grad is not None).grad[0] = float("nan")


class InfWeightAfter(pl.Callback):
    """After optimizer step ``step`` (before the checkpoint callback of that step runs), one weight becomes inf."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.model.shared.weight[5, 0] = float("inf")


def _pretrain(config, *args: str) -> None:
    assert cli_main(["pretrain", "-c", str(config), "--report", "false", *args]) == 0


def _checkpoints_are_finite(run_dir) -> list[int]:
    """Global steps of every checkpoint in the run; asserts each holds only finite floating-point tensors."""
    steps = []
    for path in sorted(run_dir.glob("checkpoints/*.ckpt")):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        bad = [k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and not v.isfinite().all()]
        assert not bad, f"{path} holds non-finite weights: {bad[:5]}"
        steps.append(ckpt["global_step"])
    return steps


def test_a_huge_learning_rate_stops_the_run_naming_step_and_batch(tmp_path):
    config = make_world(tmp_path, checkpoint_every=1)
    with pytest.raises(NonFiniteLossError) as err:
        _pretrain(config, "--model.optim.lr", "1e30", "--model.optim.warmup_steps", "0")
    message = str(err.value)
    assert message.startswith("non-finite loss at step 1: epoch 0 batch 1 (sample indices [")
    assert "stopped before the update" in message
    assert _checkpoints_are_finite(tmp_path / "run") == [1]


def test_a_nan_gradient_with_a_finite_loss_stops_the_run_before_the_update_naming_the_batch(tmp_path):
    callback = {"class_path": "test_robustness_nonfinite.NaNGradientAt", "init_args": {"step": 3}}
    config = make_world(tmp_path, trainer__callbacks=[callback])
    with pytest.raises(NonFiniteLossError, match=r"^non-finite gradient norm at step 3: ") as err:
        _pretrain(config)
    assert "stopped before the update" in str(err.value)
    assert _checkpoints_are_finite(tmp_path / "run") == [2]
    assert "epoch 0 batch 3 (sample indices [" in str(err.value)


def test_non_finite_weights_are_never_written_and_the_previous_checkpoint_stays(tmp_path):
    callback = {"class_path": "test_robustness_nonfinite.InfWeightAfter", "init_args": {"step": 4}}
    config = make_world(tmp_path, trainer__callbacks=[callback])
    with pytest.raises(NonFiniteWeightsError, match=r"refusing to write .*last\.ckpt( at step 4)?: non-finite values"):
        _pretrain(config)
    assert _checkpoints_are_finite(tmp_path / "run") == [2]
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["last.ckpt"]
