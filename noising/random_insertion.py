"""Random insertion (fairseq ``--insert``, ``DenoisingDataset.add_insertion_noise``): masks or random tokens
inserted at uniformly chosen places, ``ceil(ratio * content tokens)`` of them, but never beyond
``ctx.max_length`` (fairseq grows documents past the model's limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from noising._ops import edit, place_items, replacement_values
from noising.base import Document, Noise, NoiseContext, check_fraction, check_positive


@dataclass(frozen=True)
class RandomInsertion(Noise):
    ratio: float = 0.1
    """Tokens inserted per content token: ``ceil(ratio * (L - 2))``, capped by ``ctx.max_length - L``."""
    random_ratio: float = 0.0
    """Chance that an inserted token is a random (never special) token rather than the mask."""

    def __post_init__(self):
        check_positive(self, "ratio", self.ratio, strict=False)
        check_fraction(self, "random_ratio", self.random_ratio)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        n_content = len(doc.tokens) - 2
        k = min(math.ceil(n_content * self.ratio - 1e-9), ctx.max_length - len(doc.tokens))
        if k <= 0:
            return doc
        # k zero-length spans placed among the content tokens: insertion points before content offsets 0..n.
        at = place_items(rng, n_content, np.zeros(k, dtype=np.int64)) + 1
        return edit(doc, insert_at=at, insert_values=replacement_values(rng, ctx, k, self.random_ratio))
