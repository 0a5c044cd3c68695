"""T5 span corruption (Raffel et al. 2020, sec. 3.1.4): spans of a mean length replaced by sentinels in the source;
the target is the dropped spans, each after its sentinel, closed by one more sentinel.

``Thank you for inviting me to your party last week.`` -> source ``Thank you <extra_id_0> me to your party
<extra_id_1> week.``, target ``<extra_id_0> for inviting <extra_id_1> last <extra_id_2>``. Counts and placement
follow T5's ``random_spans_noise_mask`` (see :func:`noising._ops.t5_spans`); tokens, not words, as T5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising._ops import spans_to_example, t5_spans
from noising.base import Document, Example, NoiseContext, Objective, check_fraction, check_positive


def require_sentinels(owner: object, ctx: NoiseContext) -> None:
    if len(ctx.sentinel_ids) < 2:
        raise ValueError(
            f"{type(owner).__name__} needs the tokenizer's sentinel tokens <extra_id_N> (ctx.sentinel_ids has "
            f"{len(ctx.sentinel_ids)}); pretraining adds them to the tokenizer when the recipe has an objective"
        )


@dataclass(frozen=True)
class T5SpanCorruption(Objective):
    ratio: float = 0.15
    """Share of content tokens dropped: ``round(ratio * tokens)`` (at least 1; at most tokens - 2)."""
    mean_span: float = 3.0
    """Mean span length: the dropped tokens form ``round(dropped / mean_span)`` spans (at least 1)."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)
        check_positive(self, "mean_span", self.mean_span)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        require_sentinels(self, ctx)
        starts, lengths = t5_spans(rng, len(doc) - 2, self.ratio, self.mean_span, len(ctx.sentinel_ids) - 1)
        return Example(*spans_to_example(doc.tokens, starts, lengths, ctx.sentinel_ids, ctx.bos_id))
