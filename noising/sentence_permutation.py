"""Sentence permutation (BART paper 2.2; fairseq ``DenoisingDataset.permute_sentences``).

``ceil(ratio * sentences)`` sentences, chosen at random, are shuffled among their own places. Boundaries come
from ``doc.sentence_starts`` (a real sentence splitter at tokenization time), not from a full-stop token id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising._ops import budget
from noising.base import Document, Noise, NoiseContext, check_fraction


@dataclass(frozen=True)
class SentencePermutation(Noise):
    ratio: float = 1.0
    """Share of sentences taking part in the shuffle (1.0: all of them, as in BART-large)."""

    def __post_init__(self):
        check_fraction(self, "ratio", self.ratio)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        n = len(doc.tokens)
        starts = doc.sentence_starts
        ends = np.append(starts[1:], n - 1)
        nonempty = ends > starts
        starts, ends = starts[nonempty], ends[nonempty]
        k = len(starts)
        n_shuffled = budget(k, self.ratio)
        if n_shuffled < 2:
            return doc
        if n_shuffled == k:
            order = rng.permutation(k)
        else:
            chosen = rng.permutation(k)[:n_shuffled]
            order = np.arange(k)
            order[chosen] = chosen[rng.permutation(n_shuffled)]
        lengths = (ends - starts)[order]
        new_starts = starts[0] + np.cumsum(lengths) - lengths
        # Source offset of every output position in the sentence region: a shifted arange per sentence.
        idx = np.repeat(starts[order] - new_starts, lengths) + np.arange(starts[0], n - 1)
        tokens, ws = doc.tokens.copy(), doc.word_starts.copy()
        tokens[starts[0] : n - 1] = doc.tokens[idx]
        ws[starts[0] : n - 1] = doc.word_starts[idx]
        ws[new_starts] = True  # a sentence begins a word, also one moved first
        return Document(tokens, ws, new_starts)
