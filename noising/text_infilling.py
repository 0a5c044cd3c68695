"""Text infilling (BART paper 2.2; fairseq ``DenoisingDataset.add_whole_word_mask`` with ``span-poisson``).

Spans with truncated-Poisson lengths cover an EXACT budget of ``ceil(ratio * words)`` words; each span is then
replaced by one mask (``replace_length=1``), deleted (``0``) or masked token by token (``-1``). A 0-length span
inserts a mask (but never past ``ctx.max_length``). Unlike fairseq, spans never overlap, so the budget is what
is actually covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from noising._ops import budget, edit, place_items, replacement_values, word_positions
from noising.base import Document, Noise, NoiseContext, check_bool, check_choice, check_fraction, check_positive


@lru_cache(maxsize=64)
def poisson_cdf(lam: float) -> np.ndarray:
    """CDF of a Poisson(``lam``) truncated like fairseq: up to the first k whose pmf drops below 1e-7 (k < 128)."""
    ps, p = [], np.exp(-lam)
    for k in range(128):
        ps.append(p)
        if p < 1e-7:
            break
        p *= lam / (k + 1)
    cdf = np.cumsum(ps)
    return cdf / cdf[-1]


def sample_span_lengths(rng: np.random.Generator, cdf: np.ndarray, mean: float, total: int) -> np.ndarray:
    """I.i.d. truncated-Poisson lengths until they reach ``total``; the last one is cut so they sum to it exactly."""
    lengths = np.searchsorted(cdf, rng.random(int(total / max(mean, 0.5) * 1.25) + 8), side="right")
    cum = np.cumsum(lengths)
    while cum[-1] < total:  # rare: too few drawn, draw as many again
        lengths = np.concatenate((lengths, np.searchsorted(cdf, rng.random(len(lengths)), side="right")))
        cum = np.cumsum(lengths)
    last = int(np.searchsorted(cum, total))  # first span reaching the budget
    lengths = lengths[: last + 1]
    lengths[last] -= cum[last] - total
    return lengths


@dataclass(frozen=True)
class TextInfilling(Noise):
    ratio: float = 0.3
    """Share of words (of tokens without ``whole_words``) covered by spans: exactly ``ceil(ratio * words)``."""
    poisson_lambda: float = 3.5
    """Mean of the Poisson span length (in words), truncated where the pmf falls below 1e-7."""
    whole_words: bool = True
    """Spans cover whole words and the budget counts words (fairseq ``--mask-length word``)."""
    replace_length: int = 1
    """1: each span becomes one mask; 0: spans are deleted; -1: every token of a span becomes a mask."""
    mask_random: float = 0.1
    """Chance that a span's mask is a random (never special) token instead (fairseq ``--mask-random``)."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)
        check_positive(self, "poisson_lambda", self.poisson_lambda)
        check_bool(self, "whole_words", self.whole_words)
        check_choice(self, "replace_length", self.replace_length, (-1, 0, 1))
        check_fraction(self, "mask_random", self.mask_random)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        pos = word_positions(doc, self.whole_words)
        n_words = len(pos) - 1
        total = budget(n_words, self.ratio)
        if total == 0:
            return doc
        lengths = sample_span_lengths(rng, poisson_cdf(float(self.poisson_lambda)), self.poisson_lambda, total)
        first_word = place_items(rng, n_words - total, lengths)
        start, end = pos[first_word], pos[first_word + lengths]  # token offsets [start, end) per span
        values = replacement_values(rng, ctx, len(lengths), self.mask_random)
        insert_at = insert_values = None
        if np.count_nonzero(lengths) < len(lengths):  # 0-length spans insert their mask
            filled = lengths > 0
            insert_at, insert_values = start[~filled], values[~filled]
            start, end, values = start[filled], end[filled], values[filled]
        n = len(doc.tokens)
        bounds = np.zeros(n + 1, dtype=np.int64)
        bounds[start] += 1
        bounds[end] -= 1
        covered = np.cumsum(bounds[:n]) > 0
        keep = ~covered
        if self.replace_length == 1:
            keep[start] = True
        if insert_at is not None:
            # Many 0-length spans (small lambda) could grow the document: keep at most what max_length allows.
            room = max(ctx.max_length, n) - (n if self.replace_length == -1 else int(np.count_nonzero(keep)))
            if len(insert_at) > room:
                chosen = np.sort(rng.choice(len(insert_at), size=max(room, 0), replace=False))
                insert_at, insert_values = insert_at[chosen], insert_values[chosen]
        if self.replace_length == -1:
            tokens = doc.tokens.copy()
            span_of = np.cumsum(np.isin(np.arange(n), start)) - 1  # span index of each covered token
            tokens[covered] = values[span_of[covered]]
            rand = covered & (tokens != ctx.mask_id)
            tokens[rand] = ctx.random_tokens(rng, int(rand.sum()))  # each token of a random span draws its own id
            return edit(doc, tokens=tokens, insert_at=insert_at, insert_values=insert_values)
        tokens = ws = None
        if self.replace_length == 1:
            tokens = doc.tokens.copy()
            tokens[start] = values
            ws = doc.word_starts.copy()
            ws[start] = True
        return edit(doc, keep, tokens, ws, insert_at, insert_values)
