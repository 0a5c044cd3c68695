"""Noises written outside the repo, named in recipes by import path (``outside_noises.MaskEveryNth``).

One good plug-in and several broken ones the pipeline's runtime check must catch, naming the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising import Document, Noise, NoiseContext


@dataclass(frozen=True)
class MaskEveryNth(Noise):
    n: int = 3
    """Mask content tokens 1, 1 + n, 1 + 2n, ... (no randomness at all)."""

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"MaskEveryNth.n={self.n!r}: must be an integer >= 1")

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        tokens = doc.tokens.copy()
        tokens[1 : len(tokens) - 1 : self.n] = ctx.mask_id
        return doc.replace(tokens=tokens)


@dataclass(frozen=True)
class OutOfRangeIds(Noise):
    def __call__(self, doc, rng, ctx):
        return doc.replace(tokens=np.concatenate(([ctx.bos_id, ctx.vocab_size + 7], doc.tokens[2:])))


@dataclass(frozen=True)
class DropsEos(Noise):
    def __call__(self, doc, rng, ctx):
        return Document(doc.tokens[:-1], doc.word_starts[:-1], doc.sentence_starts)


@dataclass(frozen=True)
class FloatTokens(Noise):
    def __call__(self, doc, rng, ctx):
        return doc.replace(tokens=doc.tokens.astype(np.float32))


@dataclass(frozen=True)
class MutatesInput(Noise):
    def __call__(self, doc, rng, ctx):
        doc.tokens[1] = ctx.mask_id
        return doc


@dataclass(frozen=True)
class ReturnsInputViews(Noise):
    """Legal: returns (read-only views of) its input unchanged."""

    def __call__(self, doc, rng, ctx):
        return doc


class NotANoise:
    def __call__(self, doc, rng, ctx):
        return doc
