"""Where a pretraining run's weights start: an existing model to continue (``--model.init_from``: our checkpoint or a
transformers BART directory, with its tokenizer; :func:`load_initial_model`, :func:`check_init_config`), or random
weights (``--model.init.*``), beyond transformers' normal(0, init_std), as follows.

A post-LN encoder-decoder trained from scratch on a small budget tends to ignore its encoder: the decoder's language
model is learned first and cross-attention never finds the source token to copy (transformers issue #18461). Two
changes of the INITIAL weights only (the architecture stays BART, weights still map one-to-one to transformers):
sinusoidal values in the learned position tables (Vaswani et al. 2017, sec. 3.5), the same table in encoder and
decoder, so that position t of the target and position t of the source start out alike; and cross-attention
queries initialised equal to its keys, so that from step 0 a decoder state attends to the source states it resembles.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from bart_pretrain.model import Bart, BartConfig


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


def load_initial_model(init_from: str, tokenizer_path: str | None = None) -> tuple[Bart, Any, str]:
    """``(model, tokenizer, where the tokenizer was read from)`` to continue training ``init_from`` (our ``.ckpt`` or
    a transformers BART directory, read by ``bart_pretrain.loading.load_model``, as fine-tuning's ``init_from``).

    The tokenizer is the one ``init_from`` carries (a directory's ``tokenizer.json``, or ``vocab.json`` +
    ``merges.txt``); ``tokenizer_path`` must then name that same tokenizer (equal sha256), or supplies one for a
    checkpoint that carries none. The model's special ids (``<pad>``, ``<s>``, ``</s>``, the decoder start, which our
    batches take as ``</s>``) must be the tokenizer's; the noise's ``<mask>`` is the tokenizer's. Raises ValueError
    naming the flag, the files and what differs."""
    from bart_pretrain.loading import load_model
    from bart_pretrain.tokenizer import Tokenizer

    if not os.path.exists(init_from):
        raise ValueError(f"--model.init_from: no checkpoint or model directory at {init_from} (looked for "
                         f"{Path(init_from).absolute()})")  # fmt: skip
    loaded = load_model(init_from)
    tokenizer, source = loaded.tokenizer, loaded.tokenizer_path or init_from
    if tokenizer is None:
        if tokenizer_path is None:
            raise ValueError(
                f"--model.init_from {init_from}: {loaded.tokenizer_note}; pass --data.tokenizer_path (the tokenizer "
                "that model was trained with)"
            )
        tokenizer, source = Tokenizer.from_file(tokenizer_path, "--data.tokenizer_path"), tokenizer_path
        if tokenizer.vocab_size != loaded.model.config.vocab_size:
            raise ValueError(
                f"--data.tokenizer_path {tokenizer_path} has {tokenizer.vocab_size} tokens, the model of "
                f"--model.init_from {init_from} {loaded.model.config.vocab_size}"
            )
    elif tokenizer_path is not None:
        given = Tokenizer.from_file(tokenizer_path, "--data.tokenizer_path")
        if given.fingerprint() != tokenizer.fingerprint():
            raise ValueError(
                f"--data.tokenizer_path {tokenizer_path} is not the tokenizer of --model.init_from {init_from} (sha256 "
                f"{given.fingerprint()[:12]}..., its {tokenizer.fingerprint()[:12]}...); leave --data.tokenizer_path "
                "out: the tokenizer comes with the model"
            )
    c = loaded.model.config
    ids = {"pad_token_id": tokenizer.pad_id, "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id,
           "decoder_start_token_id": tokenizer.eos_id}  # fmt: skip
    wrong = [f"{k}={getattr(c, k)} (tokenizer: {v})" for k, v in ids.items() if getattr(c, k) != v]
    if wrong:
        raise ValueError(
            f"--model.init_from {init_from}: the model's special ids are not its tokenizer's: {', '.join(wrong)}"
        )
    return loaded.model, tokenizer, str(source)


def check_init_config(config: BartConfig, given: Mapping[str, Any], init_from: str) -> None:
    """Raise ValueError if ``given`` (the ``--model.model_config`` fields a config file or flag set) contradicts the
    config of the model loaded from ``init_from``: the model, its shape and dropout, come from there."""
    diff = {k: (v, getattr(config, k)) for k, v in given.items() if v is not None and getattr(config, k) != v}
    if diff:
        fields = ", ".join(f"{k}={v} ({init_from}: {saved})" for k, (v, saved) in diff.items())
        raise ValueError(
            f"--model.model_config sets {fields}, but the model comes from --model.init_from {init_from}; leave "
            "those fields out (or set the model's values)"
        )
