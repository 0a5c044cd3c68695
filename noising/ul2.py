"""UL2's mixture of denoisers (Tay et al. 2022, sec. 3.1): one mode per document, drawn from ``rng`` by the mixture
weights, announced by its mode token first in the source (in ``<s>``'s place):

- ``[R]`` regular: T5 span corruption, spans of mean ``r_mean_span`` (3) over ``r_ratio`` (15%) of the tokens;
- ``[S]`` sequential: prefix LM (the source a prefix cut at a uniform token, the target the rest);
- ``[X]`` extreme: long spans (mean ``x_mean_span``, 32, at ``r_ratio``) or a high rate (mean ``r_mean_span`` at
  ``x_ratio``, 50%), each with chance 1/2.

The default weights 2 : 1 : 4 are the paper's seven denoisers drawn uniformly (R has two, S one, X four).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising._ops import spans_to_example, t5_spans
from noising.base import Document, Example, NoiseContext, Objective, check_fraction, check_positive
from noising.prefix_lm import prefix_split
from noising.t5_spans import require_sentinels

MODES = ("R", "S", "X")


@dataclass(frozen=True)
class UL2Mixture(Objective):
    weights: tuple[float, float, float] = (2.0, 1.0, 4.0)
    """Relative weights of the modes R, S, X (normalised; a mode of weight 0 is never drawn)."""
    r_ratio: float = 0.15
    """R (and X's long spans): share of tokens dropped."""
    r_mean_span: float = 3.0
    """R (and X's high rate): mean span length."""
    x_ratio: float = 0.5
    """X's high rate: share of tokens dropped."""
    x_mean_span: float = 32.0
    """X's long spans: mean span length."""

    def __post_init__(self):
        w = self.weights
        ok = isinstance(w, (list, tuple)) and len(w) == 3
        ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in w) and sum(w) > 0
        if not ok:
            raise ValueError(f"UL2Mixture.weights={w!r}: must be three numbers >= 0 (R, S, X), not all 0")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))
        check_fraction(self, "r_ratio", self.r_ratio)
        check_fraction(self, "x_ratio", self.x_ratio)
        check_positive(self, "r_mean_span", self.r_mean_span)
        check_positive(self, "x_mean_span", self.x_mean_span)

    def mode(self, rng: np.random.Generator) -> int:
        """Index of the drawn mode in (R, S, X)."""
        cumulative = np.cumsum(self.weights)
        return min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), 2)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        require_sentinels(self, ctx)
        if len(ctx.mode_ids) != 3:
            raise ValueError(
                "UL2Mixture needs the tokenizer's mode tokens [R], [S], [X] (ctx.mode_ids is empty); pretraining "
                "adds them to the tokenizer when the recipe has an objective"
            )
        mode = self.mode(rng)
        first = ctx.mode_ids[mode]
        if mode == 1:
            return prefix_split(doc, rng, first)
        ratio, mean = self.r_ratio, self.r_mean_span
        if mode == 2:
            ratio, mean = (self.r_ratio, self.x_mean_span) if rng.random() < 0.5 else (self.x_ratio, self.r_mean_span)
        starts, lengths = t5_spans(rng, len(doc) - 2, ratio, mean, len(ctx.sentinel_ids) - 1)
        return Example(*spans_to_example(doc.tokens, starts, lengths, ctx.sentinel_ids, first))
