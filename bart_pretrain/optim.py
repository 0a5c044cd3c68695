"""AdamW with decoupled weight decay on matrices only, and the learning-rate schedule (linear warmup, then constant,
linear, polynomial or cosine decay: fairseq's ``polynomial_decay``). Lightning-free: :class:`OptimConfig` is pickled
into checkpoints, which inference reads without Lightning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule (``--model.optim.*``)."""

    lr: float = 4e-4
    """Peak learning rate, reached at the end of warmup."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas (BART/fairseq: 0.9, 0.98)."""
    eps: float = 1e-6
    """AdamW epsilon."""
    weight_decay: float = 0.01
    """Decoupled weight decay; never applied to biases, norms or the embedding table's pad row alone (1-D params)."""
    warmup_steps: int = 1000
    """Linear warmup from 0 to ``lr`` over this many optimizer steps."""
    schedule: Literal["polynomial", "linear", "cosine", "constant"] = "polynomial"
    """Decay after warmup, down to ``end_lr`` at ``total_steps`` (polynomial with power 1 is linear)."""
    power: float = 1.0
    """Exponent of the polynomial decay."""
    end_lr: float = 0.0
    """Learning rate at the end of the schedule."""
    total_steps: int | None = None
    """Length of the schedule in optimizer steps; None: ``--trainer.max_steps``."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy (0 for pretraining, 0.1 for BART fine-tuning)."""

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"optim.lr={self.lr!r}: must be > 0 (--model.optim.lr)")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps={self.warmup_steps!r}: must be >= 0 (--model.optim.warmup_steps)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"optim.label_smoothing={self.label_smoothing!r}: must be in [0, 1)")
        if not 0.0 <= self.end_lr <= self.lr:
            raise ValueError(f"optim.end_lr={self.end_lr!r}: must be in [0, lr={self.lr}]")
        if self.total_steps is not None and self.total_steps < 1:
            raise ValueError(f"optim.total_steps={self.total_steps!r}: must be >= 1 or null")


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of ``cfg.lr`` after ``step`` optimizer steps: linear warmup, then the chosen decay."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    end = cfg.end_lr / cfg.lr
    if cfg.schedule == "constant":
        return 1.0
    span = max(total_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    if cfg.schedule == "cosine":
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
    power = 1.0 if cfg.schedule == "linear" else cfg.power
    return end + (1.0 - end) * (1.0 - progress) ** power


def build_optimizer(model: nn.Module, cfg: OptimConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases, LayerNorm gains and other 1-D parameters are exempt).
    ``fused``: one kernel per step instead of a chain of foreach ops, where every parameter is on CPU or CUDA
    (Lightning's mixed-precision plugins refuse gradient clipping with a fused optimizer: full precision only)."""
    # Under FSDP a parameter is a flat shard by now; the strategy records its shape's ndim as `unsharded_ndim`.
    decay = [p for p in model.parameters() if p.requires_grad and getattr(p, "unsharded_ndim", p.ndim) >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and getattr(p, "unsharded_ndim", p.ndim) < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = fused and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> dict:
    """A Lightning ``lr_scheduler`` dict stepping every optimizer step."""
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, total_steps))
    return {"scheduler": sched, "interval": "step", "frequency": 1}
