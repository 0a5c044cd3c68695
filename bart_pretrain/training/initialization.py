"""Initialisation for training a BART from scratch (``--model.init.*``), beyond transformers' normal(0, init_std).

A post-LN encoder-decoder trained from scratch on a small budget tends to ignore its encoder: the decoder's language
model is learned first and cross-attention never finds the source token to copy (transformers issue #18461). Two
changes of the INITIAL weights only (the architecture stays BART, weights still map one-to-one to transformers):
sinusoidal values in the learned position tables (Vaswani et al. 2017, sec. 3.5), the same table in encoder and
decoder, so that position t of the target and position t of the source start out alike; and cross-attention
queries initialised equal to its keys, so that from step 0 a decoder state attends to the source states it resembles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from bart_pretrain.model import Bart


@dataclass
class InitConfig:
    """How the weights of a from-scratch model start (``--model.init.*``)."""

    positions: Literal["normal", "sinusoidal"] = "normal"
    """Learned position tables: normal(0, init_std) as transformers, or sinusoids scaled to the same std."""
    cross_attention: Literal["normal", "query_equals_key"] = "normal"
    """Decoder cross-attention: independent q/k projections, or q initialised as a copy of k."""

    def __post_init__(self) -> None:
        if self.positions not in ("normal", "sinusoidal"):
            raise ValueError(f"init.positions={self.positions!r}: must be 'normal' or 'sinusoidal'")
        if self.cross_attention not in ("normal", "query_equals_key"):
            raise ValueError(f"init.cross_attention={self.cross_attention!r}: must be 'normal' or 'query_equals_key'")


def sinusoids(n: int, d: int) -> torch.Tensor:
    """(n, d) sin/cos position codes, frequencies as in the Transformer paper, interleaved by halves."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
    table = torch.zeros(n, d, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: d // 2])
    return table


@torch.no_grad()
def initialize(model: Bart, cfg: InitConfig) -> Bart:
    """Apply ``cfg`` to a freshly built ``model`` in place (a no-op for the defaults)."""
    c = model.config
    if cfg.positions == "sinusoidal":
        table = sinusoids(c.max_position_embeddings, c.d_model)
        table *= c.init_std / table.std()
        for stack in (model.encoder, model.decoder):
            stack.embed_positions.weight[2:] = table.to(stack.embed_positions.weight.dtype)
    if cfg.cross_attention == "query_equals_key":
        D = c.d_model
        for layer in model.decoder.layers:
            w = layer.encoder_attn.qkv_proj.weight
            w[:D] = w[D : 2 * D]
    return model
