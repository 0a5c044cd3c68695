"""Prefix language modelling (Raffel et al. 2020, sec. 3.3; UL2's S-denoiser): the source is a prefix of the
document, cut at a uniformly drawn token, the target is the rest.

``<s> a b c d </s>`` -> source ``<s> a b </s>``, target ``<s> c d </s>`` (cut after 1 to n - 1 content tokens, each
equally likely, so both sides hold text). A document of fewer than 2 content tokens is all source, target ``<s></s>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising.base import Document, Example, NoiseContext, Objective


def prefix_split(doc: Document, rng: np.random.Generator, first: int) -> Example:
    """Source ``first`` + a prefix of 1 to n - 1 content tokens (uniform) + ``</s>``; target ``<s>`` + the rest +
    ``</s>``."""
    t = doc.tokens
    n = len(t) - 2
    if n < 2:
        return Example(np.concatenate(([first], t[1:])).astype(np.int64), np.array([t[0], t[-1]], dtype=np.int64))
    cut = 1 + int(rng.random() * (n - 1))  # uniform in [1, n - 1]
    source = np.concatenate(([first], t[1 : 1 + cut], [t[-1]])).astype(np.int64)
    target = np.concatenate(([t[0]], t[1 + cut :])).astype(np.int64)
    return Example(source, target)


@dataclass(frozen=True)
class PrefixLM(Objective):
    """Source: a prefix cut at a uniformly drawn token; target: the rest of the document."""

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        return prefix_split(doc, rng, ctx.bos_id)
