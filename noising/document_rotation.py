"""Document rotation (BART paper 2.2; fairseq ``DenoisingDataset.add_rolling_noise``).

With probability ``probability``, a content token is chosen uniformly and the content is rotated to begin
with it; ``<s>`` and ``</s>`` stay in place. The cut becomes a sentence (and word) boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noising._ops import clean_sentence_starts
from noising.base import Document, Noise, NoiseContext, check_fraction


@dataclass(frozen=True)
class DocumentRotation(Noise):
    probability: float = 1.0
    """Chance that a document is rotated at all (fairseq ``--rotate``)."""

    def __post_init__(self):
        check_fraction(self, "probability", self.probability)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        n_content = len(doc.tokens) - 2
        if self.probability == 0 or n_content < 2 or rng.random() >= self.probability:
            return doc
        shift = int(rng.random() * n_content)  # content index that becomes first; 0 leaves the document as is
        if shift == 0:
            return doc
        order = np.concatenate(([0], np.arange(shift + 1, n_content + 1), np.arange(1, shift + 1), [n_content + 1]))
        ws = doc.word_starts[order]
        ws[1] = True
        starts = np.concatenate(([1], (doc.sentence_starts - 1 - shift) % n_content + 1))
        return Document(doc.tokens[order], ws, clean_sentence_starts(np.sort(starts), len(order)))
