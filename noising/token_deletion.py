"""Token deletion (BART paper 2.2): random tokens (or whole words) are deleted; the model must find where.

Exactly ``ceil(ratio * units)`` units (words with ``whole_words``, else tokens) are deleted. fairseq reaches
the same through ``add_whole_word_mask`` with ``replace_length=0``. What is left of a word whose first token went
starts a word of its own, so the first content token always starts a word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising._ops import choose_units, edit
from noising.base import Document, Noise, NoiseContext, check_bool, check_fraction


@dataclass(frozen=True)
class TokenDeletion(Noise):
    ratio: float = 0.15
    """Share of units (words or tokens) deleted: exactly ``ceil(ratio * units)``."""
    whole_words: bool = False
    """Delete whole words rather than single tokens."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)
        check_bool(self, "whole_words", self.whole_words)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        units = choose_units(doc, self.whole_words, self.ratio, rng)
        if units is None:
            return doc
        pos, chosen = units
        n = len(doc.tokens)
        bounds = np.zeros(n + 1, dtype=np.int64)
        bounds[pos[chosen]] = 1  # chosen words are distinct: no repeated index
        bounds[pos[chosen + 1]] -= 1
        keep = np.cumsum(bounds[:n]) == 0
        return edit(doc, keep)  # edit marks what is left of a word whose start went as a word of its own
