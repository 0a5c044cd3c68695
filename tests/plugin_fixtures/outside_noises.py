"""Noises written outside the repo, named in recipes by import path (``outside_noises.MaskEveryNth``).

One good plug-in and several broken ones the pipeline's runtime check must catch, naming the class.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from random import random as imported_random

import numpy as np

from noising import Document, Noise, NoiseContext


@dataclass(frozen=True)
class MaskEveryNth(Noise):
    n: int = 3
    """Mask content tokens 1, 1 + n, 1 + 2n, ... (no randomness at all)."""

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"MaskEveryNth.n={self.n!r}: must be an integer >= 1")

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        tokens = doc.tokens.copy()
        tokens[1 : len(tokens) - 1 : self.n] = ctx.mask_id
        return doc.replace(tokens=tokens)


@dataclass(frozen=True)
class OutOfRangeIds(Noise):
    def __call__(self, doc, rng, ctx):
        return doc.replace(tokens=np.concatenate(([ctx.bos_id, ctx.vocab_size + 7], doc.tokens[2:])))


@dataclass(frozen=True)
class DropsEos(Noise):
    def __call__(self, doc, rng, ctx):
        return Document(doc.tokens[:-1], doc.word_starts[:-1], doc.sentence_starts)


@dataclass(frozen=True)
class FloatTokens(Noise):
    def __call__(self, doc, rng, ctx):
        return doc.replace(tokens=doc.tokens.astype(np.float32))


@dataclass(frozen=True)
class MutatesInput(Noise):
    def __call__(self, doc, rng, ctx):
        doc.tokens[1] = ctx.mask_id
        return doc


@dataclass(frozen=True)
class ReturnsInputViews(Noise):
    """Legal: returns (read-only views of) its input unchanged."""

    def __call__(self, doc, rng, ctx):
        return doc


class NotANoise:
    def __call__(self, doc, rng, ctx):
        return doc


@dataclass(frozen=True)
class ReturnsList(Noise):
    def __call__(self, doc, rng, ctx):
        return doc.tokens.tolist()


@dataclass(frozen=True)
class GlobalRandomMask(Noise):
    """Masks each content token with chance 0.3 drawn from numpy's GLOBAL generator: not a function of the seed."""

    def __call__(self, doc, rng, ctx):
        tokens = doc.tokens.copy()
        hit = np.random.random(len(tokens)) < 0.3  # noqa: NPY002 (the bug this fixture is)
        hit[[0, -1]] = False
        tokens[hit] = ctx.mask_id
        return doc.replace(tokens=tokens)


@dataclass(frozen=True)
class DropsEosFromLongDocuments(Noise):
    """Right on documents of up to 3 sentences (the start-up check's probe has 3), drops </s> from longer ones: the
    check on real data (in the DataLoader workers) catches it."""

    def __call__(self, doc, rng, ctx):
        if len(doc.sentence_starts) <= 3:
            return Document(doc.tokens.copy(), doc.word_starts.copy(), doc.sentence_starts.copy())
        return Document(doc.tokens[:-1].copy(), doc.word_starts[:-1].copy(), doc.sentence_starts.copy())


@dataclass(frozen=True)
class ClearsFirstWordStart(Noise):
    """Breaks only the word-start rule: the first content token no longer starts a word."""

    def __call__(self, doc, rng, ctx):
        word_starts = doc.word_starts.copy()
        word_starts[1:2] = False
        return doc.replace(word_starts=word_starts)


@dataclass(frozen=True)
class RarelyGlobalRandom(Noise):
    """Right on nine calls in ten; on the tenth (its own rng decides which) it also draws from Python's global
    `random`: the output does not change, but the global state does, and with it every later draw of other code."""

    def __call__(self, doc, rng, ctx):
        if rng.random() < 0.1:
            random.random()
        return Document(doc.tokens.copy(), doc.word_starts.copy(), doc.sentence_starts.copy())


@dataclass(frozen=True)
class ImportedGlobalRandom(Noise):
    """Draws through `from random import random`, bound before any check could replace a module attribute."""

    def __call__(self, doc, rng, ctx):
        tokens = doc.tokens.copy()
        tokens[1] = ctx.mask_id if imported_random() < 0.5 else tokens[1]
        return doc.replace(tokens=tokens)


@dataclass(frozen=True)
class GlobalGauss(Noise):
    """Draws `random.gauss` (which caches every second value)."""

    def __call__(self, doc, rng, ctx):
        random.gauss(0.0, 1.0)
        return Document(doc.tokens.copy(), doc.word_starts.copy(), doc.sentence_starts.copy())


@dataclass(frozen=True)
class ReseedsNumpy(Noise):
    """Seeds numpy's global generator, then draws from it: the same output on every call, but the global state is not
    its to set."""

    def __call__(self, doc, rng, ctx):
        np.random.seed(0)  # noqa: NPY002 (the bug this fixture is)
        np.random.randint(5)  # noqa: NPY002
        return Document(doc.tokens.copy(), doc.word_starts.copy(), doc.sentence_starts.copy())


@dataclass(frozen=True)
class TorchOnLongDocuments(Noise):
    """Draws from torch's global generator, only on documents of more than 3 sentences (the start-up probe has 3)."""

    def __call__(self, doc, rng, ctx):
        if len(doc.sentence_starts) > 3:
            import torch

            torch.rand(1)
        return Document(doc.tokens.copy(), doc.word_starts.copy(), doc.sentence_starts.copy())


@dataclass(frozen=True)
class OwnEntropy(Noise):
    """Draws from a generator of its own seeded by the OS: no global state changes, the outputs differ."""

    def __call__(self, doc, rng, ctx):
        tokens = doc.tokens.copy()
        tokens[1 : len(tokens) - 1] = np.random.default_rng().permutation(tokens[1 : len(tokens) - 1])
        return doc.replace(tokens=tokens)
