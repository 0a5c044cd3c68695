"""Where each token of a corrupted document came from: ``trace`` reruns a noise with the same generator on a copy of
the document whose tokens are unique stand-in ids, and the stand-ins show the input offset of every output token.

Exact for noises that do not read token values (every built-in); ``None`` when the stand-in run takes another path.
Used to split reconstruction accuracy into corrupted and kept positions, and by ``noise-preview``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from noising.base import Document, NoiseContext, sample_rng

NoiseFn = Callable[[Document, np.random.Generator, NoiseContext], Document]


def trace(
    noise: NoiseFn, doc: Document, seed: int, epoch: int, index: int, ctx: NoiseContext
) -> tuple[np.ndarray, np.ndarray] | None:
    """(corrupted tokens, input offset of each of them or -1 for a new token: mask, random or inserted), for the
    sample ``(seed, epoch, index)``; None if provenance cannot be traced (the noise reads token values, or the
    vocabulary has too few ordinary ids to give every token a stand-in)."""
    out = noise(doc, sample_rng(seed, epoch, index), ctx).tokens
    n = len(doc)
    stand_ins = np.setdiff1d(np.arange(ctx.vocab_size), ctx.special_ids)[: max(n - 2, 0)]
    if len(stand_ins) < n - 2:
        return None
    copy = doc.replace(tokens=np.concatenate(([ctx.bos_id], stand_ins, [ctx.eos_id])))
    traced = noise(copy, sample_rng(seed, epoch, index), ctx).tokens
    if len(traced) != len(out):
        return None
    source = np.full(len(out), -1)
    is_stand_in = np.isin(traced, stand_ins)
    source[is_stand_in] = np.searchsorted(stand_ins, traced[is_stand_in]) + 1
    source[0], source[-1] = 0, n - 1
    # A random replacement may equal a stand-in id by chance: a token came from offset j only if it equals doc[j].
    came = (source >= 0) & (out == doc.tokens[np.maximum(source, 0)])
    source[~came] = -1
    if not np.array_equal(out[~came], traced[~came]):
        return None  # new tokens differ between the runs: the noise read token values
    return out, source


def corrupted_positions(
    noise: NoiseFn, doc: Document, seed: int, epoch: int, index: int, ctx: NoiseContext
) -> np.ndarray | None:
    """Bool per token of ``doc``: True where the token is absent from the corrupted output (masked, deleted or
    replaced), False where it survives, in place or moved; None if provenance cannot be traced."""
    traced = trace(noise, doc, seed, epoch, index, ctx)
    if traced is None:
        return None
    _, source = traced
    corrupted = np.ones(len(doc), dtype=bool)
    corrupted[source[source >= 0]] = False
    return corrupted
