""":class:`Seq2SeqModule`, the LightningModule base pretraining and fine-tuning subclass: token-level cross-entropy
normalised by the number of target tokens of the whole optimizer step (all accumulated batches, all ranks), AdamW
with warmup + decay (``bart_pretrain.optim``), a non-finite loss guard.

Normalisation (fairseq's ``--sentence-avg false``): each batch backpropagates its SUM of token losses; before the
optimizer step the gradients are scaled by ``1 / N`` where N is the all-reduced token count of the step, so the
update is ``grad(sum of token losses) / N`` exactly, not a mean of per-batch means.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from bart_pretrain.model import causal_mask, padding_mask
from bart_pretrain.optim import build_optimizer, build_scheduler
from bart_pretrain.training.losses import COMPILE_OPTIONS, linear_cross_entropy

# Backward runs on sum(token losses) / LOSS_SCALE and the gradients are rescaled before the step. A power of two, so
# the scaling is exact in floating point; it only keeps fp16 gradients in range.
LOSS_SCALE = 4096.0


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot build the training step on ``device`` (None: it can): dynamo unsupported on this
    Python, or no C++ compiler for inductor's CPU kernels."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch._dynamo does not support this Python"
    if device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception as e:  # inductor's own search: its error names what it looked for
            first_line = (str(e) or type(e).__name__).splitlines()[0]
            return f"no C++ compiler for inductor's CPU kernels: {first_line}"
    return None


class NonFiniteLossError(RuntimeError):
    """Raised when a training loss or gradient is NaN/inf; the weights are left as they were before the step."""


class Seq2SeqModule(pl.LightningModule):
    """Base LightningModule for token-level seq2seq training. Subclasses set ``self.model`` (a ``Bart``),
    ``self.pad_id`` and ``self.optim`` (:class:`OptimConfig`), and may override :meth:`token_loss`.

    Batches are dicts with ``input_ids``, ``attention_mask``, ``decoder_input_ids`` and ``labels`` (pad = pad_id);
    optional metadata ``epoch``, ``position`` and ``indices`` name the batch in error messages. Logs ``train/loss``,
    ``train/token_acc``, ``train/lr``, ``train/tokens_per_s`` (target tokens, all ranks), ``train/grad_norm``,
    ``train/tokens_seen``, ``train/real_token_share`` (when batches carry ``real_tokens``/``padded_tokens``);
    ``val/loss`` and ``val/token_acc`` (token-weighted over all ranks).
    """

    on_nonfinite: Literal["stop", "skip"] = "stop"
    """NaN/inf loss or gradient: stop with a message naming step and batch, or skip the update and go on."""

    compiled: bool = False
    """``torch.compile`` the training step's encoder-decoder and loss kernel (``--model.compile``); eager otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self._compiled_stack = None  # torch.compile(model.stack_states), built at the first compiled training step
        self._deterministic_before: tuple[bool, bool] | None = None  # torch's setting before a compiled CPU fit
        self._window: list[tuple[Tensor, dict]] = []  # (loss sum, tokens, correct) on device + batch id, this rank
        self._val: list[Tensor] = []
        self._last_step_time: float | None = None
        self.tokens_seen = 0
        self.history: dict[str, list] = {"train": [], "val": []}  # (step, loss) points for the report and plot

    # -- loss ----------------------------------------------------------------------------------------------------
    def token_loss(self, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """(sum of token losses, target token count, correct count) of one batch; loss only at non-pad labels."""
        labels = batch["labels"]
        target = labels != self.pad_id
        model = self.model
        compiled = self.compiled and self.training and torch.is_grad_enabled()
        hidden = self.hidden_states(batch, target, compiled)
        # The LM head and the loss in one chunked kernel: the (N, V) logits are never materialised.
        loss, correct = linear_cross_entropy(
            hidden, model.shared.weight, model.final_logits_bias[0], labels[target], label_smoothing, compiled=compiled
        )
        return loss, target.sum(), correct

    def hidden_states(self, batch: dict[str, Tensor], rows: Tensor, compiled: bool = False) -> Tensor:
        """Final decoder states (N, D) at the (B, T) bool ``rows`` of the batch's targets; with ``compiled``, through
        ``torch.compile`` of the model's branch-free ``stack_states`` (masks computed here, outside the graph; shapes
        dynamic, so token-budget batches of any length reuse one compiled graph)."""
        self_mask, is_causal = causal_mask(batch.get("decoder_attention_mask"))
        memory_mask = padding_mask(batch["attention_mask"])
        args = (batch["input_ids"], memory_mask, batch["decoder_input_ids"], self_mask, is_causal)
        if not compiled:
            return self.model.stack_states(*args)[rows]
        if self._compiled_stack is None:
            self._compiled_stack = torch.compile(self.model.stack_states, **COMPILE_OPTIONS)
        return self._compiled_stack(*args)[rows]

    @staticmethod
    def describe_batch(meta: dict) -> str:
        """``meta``: the batch's ``size`` and, when the loader provides them, ``epoch``, ``position``, ``indices``."""
        if "position" not in meta:
            return f"a batch of {meta['size']} samples"
        shown = list(meta.get("indices", []))[:8]
        return f"epoch {meta.get('epoch')} batch {meta['position']} (sample indices {shown}...)"

    # -- training ------------------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.compiled:
            reason = compile_unavailable(self.device)
            if reason:
                self.compiled = False
                self.print(f"--model.compile: torch.compile is unavailable here ({reason}); training eager")
        if self.compiled and self.device.type == "cpu":
            # Inductor's CPU kernels add the embedding gradient with atomic adds across threads, whose order changes
            # from run to run: with 2+ threads the same seed gave other weights. torch's deterministic mode makes it
            # take the eager kernel for that sum (one thread: the same bits as without it). Undone at teardown.
            self._deterministic_before = (
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
            )
            torch.use_deterministic_algorithms(True, warn_only=True)

    def teardown(self, stage: str) -> None:
        if self._deterministic_before is not None:
            mode, warn_only = self._deterministic_before
            torch.use_deterministic_algorithms(mode, warn_only=warn_only)
            self._deterministic_before = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout masks as a pure function of (seed, epoch, batch, rank), not of the global RNG's history (which
        # loader start-ups and validation also draw from): a resumed run draws exactly the masks it would have.
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        state = np.random.SeedSequence([seed, self.current_epoch, batch_idx, self.global_rank]).generate_state(2)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss, n_tokens, correct = self.token_loss(batch, self.optim.label_smoothing)
        stats = torch.stack([loss.detach().double(), n_tokens.double(), correct.double()])
        meta = {k: batch[k] for k in ("epoch", "position", "indices", "real_tokens", "padded_tokens") if k in batch}
        self._window.append((stats, meta | {"size": len(batch["labels"])}))
        return loss / LOSS_SCALE

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        stats = torch.stack([s for s, _ in self._window])  # (batches, 3)
        bad = ~torch.isfinite(stats[:, 0])
        local = torch.cat([stats.sum(0), bad.any().double()[None]])
        total = self.trainer.strategy.reduce(local, reduce_op="sum")
        params = [p for p in self.parameters() if p.grad is not None]
        # Undo Lightning's division by accumulate_grad_batches and DDP's averaging over ranks, then divide by the
        # step's global token count.
        scale = self.trainer.world_size * self.trainer.accumulate_grad_batches * LOSS_SCALE / total[1].clamp(min=1)
        torch._foreach_mul_([p.grad for p in params], scale.to(params[0].grad.dtype))
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params]))
        if isinstance(self.trainer.strategy, pl.strategies.FSDPStrategy):  # each rank holds a shard of the gradient
            grad_norm = self.trainer.strategy.reduce(grad_norm.double().square(), reduce_op="sum").sqrt()
        loss_sum, n_tokens, correct, bad_ranks, grad_norm = torch.cat([total, grad_norm.double()[None]]).tolist()
        expects_overflow = str(self.trainer.precision).startswith("16")  # the fp16 grad scaler skips those steps
        if bad_ranks or not math.isfinite(loss_sum) or (not expects_overflow and not math.isfinite(grad_norm)):
            self._nonfinite(bool(bad_ranks or not math.isfinite(loss_sum)), bad, params)
            return
        now = time.perf_counter()
        self.tokens_seen += int(n_tokens)
        metrics = {
            "train/loss": loss_sum / max(n_tokens, 1.0),
            "train/token_acc": correct / max(n_tokens, 1.0),
            "train/lr": optimizer.param_groups[0]["lr"],
            "train/grad_norm": grad_norm,
            "train/tokens_seen": float(self.tokens_seen),
        }
        padded = sum(meta.get("padded_tokens", 0) for _, meta in self._window)
        if padded:  # this rank's share of real (non-pad) source + target tokens in the step's batches
            metrics["train/real_token_share"] = sum(meta["real_tokens"] for _, meta in self._window) / padded
        if self._last_step_time is not None:
            metrics["train/tokens_per_s"] = n_tokens / max(now - self._last_step_time, 1e-9)
        self._last_step_time = now
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)
        self.log("loss", metrics["train/loss"], prog_bar=True, logger=False, batch_size=1)
        self.history["train"].append((self.trainer.global_step + 1, metrics["train/loss"]))
        self._window.clear()

    def _nonfinite(self, in_loss: bool, bad: Tensor, params: list[nn.Parameter]) -> None:
        # A non-finite loss names its batches; a non-finite gradient (finite loss) may come from any batch of the step.
        flags = bad.tolist() if in_loss else [True] * len(self._window)
        culprits = [self.describe_batch(meta) for (_, meta), b in zip(self._window, flags, strict=True) if b]
        where = "; ".join(culprits) or "another rank's batch"
        what = "loss" if in_loss else "gradient norm"
        message = f"non-finite {what} at step {self.trainer.global_step}: {where} (rank {self.global_rank})"
        self._window.clear()
        if self.on_nonfinite == "stop":
            raise NonFiniteLossError(message + "; stopped before the update, so no checkpoint holds it")
        self.print(f"warning: {message}; update skipped")
        for p in params:
            p.grad = None

    def on_train_epoch_start(self) -> None:
        self._last_step_time = None  # do not count validation or loader start-up as training time

    def on_validation_end(self) -> None:
        self._last_step_time = None

    # -- validation ----------------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val.clear()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._val.append(self.validation_sums(batch))

    def validation_sums(self, batch: dict) -> Tensor:
        """1-D float64 sums of one validation batch, reduced over batches and ranks; the first three are
        (token loss, target tokens, correct tokens). Subclasses may append more and read them in
        :meth:`validation_metrics`."""
        loss, n_tokens, correct = self.token_loss(batch)
        return torch.stack([loss.double(), n_tokens.double(), correct.double()])

    def validation_metrics(self, sums: list[float]) -> dict[str, float]:
        """Metrics (logged under ``val/``) from the reduced :meth:`validation_sums`."""
        loss_sum, n_tokens, correct = sums[:3]
        return {"loss": loss_sum / max(n_tokens, 1.0), "token_acc": correct / max(n_tokens, 1.0)}

    def on_validation_epoch_end(self) -> None:
        local = torch.stack(self._val).sum(0) if self._val else torch.zeros(3, dtype=torch.float64, device=self.device)
        sums = self.trainer.strategy.reduce(local, reduce_op="sum").tolist()
        self._val.clear()
        metrics = self.validation_metrics(sums)
        shown = ("loss", "token_acc")
        self.log_dict({f"val/{k}": metrics[k] for k in shown}, prog_bar=True)
        self.log_dict({f"val/{k}": v for k, v in metrics.items() if k not in shown})
        if self.full_validation():  # a partial sanity pass would give a misleading first point
            points = self.history["val"]
            if points and points[-1][0] == self.trainer.global_step:
                points.pop()  # re-validated after a resume: keep one point per step
            points.append((self.trainer.global_step, metrics["loss"]))

    def full_validation(self) -> bool:
        """False during a partial sanity-check pass (``num_sanity_val_steps`` other than -1)."""
        return not self.trainer.sanity_checking or self.trainer.num_sanity_val_steps == float("inf")

    # -- optimizer -----------------------------------------------------------------------------------------------
    def total_steps(self) -> int:
        """Schedule length without touching the train loader (reading ``trainer.estimated_stepping_batches`` here
        would build it before a checkpoint's loader state is restored: Lightning issue #20550)."""
        if self.optim.total_steps is not None:
            return self.optim.total_steps
        if self.trainer.max_steps and self.trainer.max_steps > 0:
            return self.trainer.max_steps
        raise ValueError(
            "set --trainer.max_steps (or --model.optim.total_steps) so the learning-rate schedule has an end"
        )

    def configure_optimizers(self) -> Any:
        full_precision = str(self.trainer.precision).startswith(("32", "64"))
        optimizer = build_optimizer(self.model, self.optim, fused=full_precision)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.optim, self.total_steps())}

    # -- state that must survive a resume ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["training_state"] = {"tokens_seen": self.tokens_seen, "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from bart_pretrain.training.guards import check_resume_compatible

        # Before Lightning loads the weights: a checkpoint of another shape gets a clear error, not torch's list.
        check_resume_compatible(checkpoint, self.model.config, getattr(self._trainer, "ckpt_path", None))
        state = checkpoint.get("training_state", {})
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.history = {k: [tuple(x) for x in v] for k, v in state.get("history", self.history).items()}
