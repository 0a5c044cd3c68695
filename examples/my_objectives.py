"""A plug-in objective written outside the package (README, "Is my corruption better?"): middle infilling. One
contiguous stretch of the document is cut out; the source keeps the text around one ``<mask>``, the target is the
stretch. Use it as ``class_path: my_objectives.MiddleInfilling`` with this directory on PYTHONPATH.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising import Document, Example, NoiseContext, Objective
from noising.base import check_fraction


@dataclass(frozen=True)
class MiddleInfilling(Objective):
    """Cuts out ``round(ratio * tokens)`` contiguous content tokens (at least 1) at a uniformly drawn place."""

    ratio: float = 0.3
    """Share of the content tokens cut out."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)  # ValueError: "MiddleInfilling.ratio=1.5: must be a number in [0, 1]"

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        t = doc.tokens
        n = len(t) - 2
        k = min(max(round(self.ratio * n), 1), n) if n and self.ratio else 0
        if k == 0:  # nothing to cut: the whole document is the source, the target is empty
            return Example(t.copy(), t[[0, -1]].copy())
        start = 1 + int(rng.random() * (n - k + 1))  # uniform in [1, n - k + 1]: draw only from rng
        source = np.concatenate((t[:start], [ctx.mask_id], t[start + k :]))  # never longer than the document
        target = np.concatenate((t[:1], t[start : start + k], t[-1:]))
        return Example(source.astype(np.int64), target.astype(np.int64))
