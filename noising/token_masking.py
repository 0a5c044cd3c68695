"""Token masking (BART paper 2.2, after BERT): random words or tokens replaced by a mask, in place.

Exactly ``ceil(ratio * units)`` units (words with ``whole_words``, else tokens) are chosen; each is masked,
replaced by a random non-special token (``random_ratio``) or left as is (``keep_ratio``), every token of a
chosen word alike. The length and the sentence structure never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising._ops import choose_units
from noising.base import Document, Noise, NoiseContext, check_bool, check_fraction


@dataclass(frozen=True)
class TokenMasking(Noise):
    ratio: float = 0.15
    """Share of units (words or tokens) chosen: exactly ``ceil(ratio * units)``."""
    whole_words: bool = False
    """Choose whole words: every token of a chosen word is treated alike."""
    random_ratio: float = 0.1
    """Share of chosen units replaced by random (never special) tokens instead of the mask."""
    keep_ratio: float = 0.0
    """Share of chosen units left unchanged (BERT uses 0.1)."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)
        check_bool(self, "whole_words", self.whole_words)
        check_fraction(self, "random_ratio", self.random_ratio)
        check_fraction(self, "keep_ratio", self.keep_ratio)
        if self.random_ratio + self.keep_ratio > 1:
            raise ValueError(
                f"TokenMasking.random_ratio={self.random_ratio!r} + TokenMasking.keep_ratio={self.keep_ratio!r}: "
                "must sum to at most 1"
            )

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        units = choose_units(doc, self.whole_words, self.ratio, rng)
        if units is None:
            return doc
        pos, chosen = units
        u = rng.random(len(chosen))
        fate = np.where(u < self.random_ratio, 1, np.where(u < self.random_ratio + self.keep_ratio, 2, 0))
        lengths = pos[chosen + 1] - pos[chosen]
        # Token offsets of every chosen unit, flattened: start repeated per token plus its rank within the unit.
        flat_fate = np.repeat(fate, lengths)
        idx = np.repeat(pos[chosen] - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
        tokens = doc.tokens.copy()
        masked = idx[flat_fate == 0]
        tokens[masked] = ctx.mask_id
        rand = idx[flat_fate == 1]
        tokens[rand] = ctx.random_tokens(rng, len(rand))
        return doc.replace(tokens=tokens)
