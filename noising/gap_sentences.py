"""PEGASUS gap-sentence generation (Zhang et al. 2020, sec. 3.1), "Ind-Orig": the sentences most like the rest of the
document are masked whole; the target is those sentences, in document order (or, optionally, the whole document).

Each sentence is scored on its own by ROUGE-1 F1 against the rest of the document (words counted with repeats:
"Orig"; scored independently: "Ind"), and the ``ceil(ratio * sentences)`` best (ties: the earlier) are chosen. Each
chosen sentence becomes one ``<mask_sentence>`` in the source. Words are the document's words (``word_starts``), as
token sequences. Deterministic: the choice reads the text, not the generator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from noising._ops import budget
from noising.base import Document, Example, NoiseContext, Objective, check_choice, check_fraction


def sentence_bounds(doc: Document) -> list[tuple[int, int]]:
    """``[start, end)`` token offsets of the document's sentences."""
    starts = [int(s) for s in doc.sentence_starts]
    if not starts:
        return []
    return list(zip(starts, [*starts[1:], len(doc) - 1], strict=True))


def rouge1_f1(a: Counter, b: Counter) -> float:
    """ROUGE-1 F1 between two bags of words (counts kept: "Orig")."""
    overlap = sum((a & b).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(a.values()), overlap / sum(b.values())
    return 2 * precision * recall / (precision + recall)


def sentence_scores(doc: Document) -> np.ndarray:
    """ROUGE-1 F1 of every sentence against all the others together (float64 per sentence)."""
    t, ws = doc.tokens.tolist(), doc.word_starts
    bags = []
    for start, end in sentence_bounds(doc):
        cuts = [start, *(int(i) for i in np.flatnonzero(ws[start + 1 : end]) + start + 1), end]
        bags.append(Counter(tuple(t[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)))
    total = sum(bags, Counter())
    return np.array([rouge1_f1(bag, total - bag) for bag in bags], dtype=np.float64)


@dataclass(frozen=True)
class GapSentences(Objective):
    ratio: float = 0.3
    """Share of sentences masked: exactly ``ceil(ratio * sentences)``."""
    target: Literal["gaps", "document"] = "gaps"
    """``gaps``: the chosen sentences in document order (PEGASUS); ``document``: the whole original (BART-style)."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)
        check_choice(self, "target", self.target, {"gaps", "document"})

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        if ctx.mask_sentence_id is None:
            raise ValueError(
                "GapSentences needs the tokenizer's <mask_sentence> token (ctx.mask_sentence_id is None); "
                "pretraining adds it to the tokenizer when the recipe has an objective"
            )
        t = doc.tokens
        bounds = sentence_bounds(doc)
        k = budget(len(bounds), self.ratio)
        if k == 0:
            return Example(t.copy(), t.copy() if self.target == "document" else t[[0, -1]].copy())
        chosen = set(np.argsort(-sentence_scores(doc), kind="stable")[:k].tolist())
        source, gaps = [t[:1]], [t[:1]]
        for i, (start, end) in enumerate(bounds):
            if i in chosen:
                source.append(np.array([ctx.mask_sentence_id], dtype=np.int64))
                gaps.append(t[start:end])
            else:
                source.append(t[start:end])
        source.append(t[-1:])
        gaps.append(t[-1:])
        target = t.copy() if self.target == "document" else np.concatenate(gaps)
        return Example(np.concatenate(source).astype(np.int64), target.astype(np.int64))
