"""A tiny third-party package exposing a noise through the `bart_pretrain.noising` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising import Document, Noise, NoiseContext, edit
from noising.base import check_fraction


@dataclass(frozen=True)
class WordDropout(Noise):
    p: float = 0.2
    """Chance that each content token is dropped."""

    def __post_init__(self):
        check_fraction(self, "p", self.p)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        keep = np.ones(len(doc.tokens), dtype=bool)
        keep[1:-1] = rng.random(len(doc.tokens) - 2) >= self.p
        return edit(doc, keep)
