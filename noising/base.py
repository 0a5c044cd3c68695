"""The noising contract: the document type, the context of special ids, and the base classes of every corruption.

A noise is a frozen dataclass whose fields are its hyper-parameters (validated in ``__post_init__``), called
as ``noise(doc, rng, ctx)``. It returns a NEW :class:`Document` and never mutates its input, and draws randomness
from ``rng`` only; the target is the original. An :class:`Objective` is called the same way and defines the target
too: it returns an :class:`Example` (source, target).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Document:
    """Token ids ``<s> ... </s>`` plus the structure a corruption may need.

    tokens: int64 ``[L]``; ``tokens[0]`` is ``<s>``, ``tokens[-1]`` is ``</s>`` (L >= 2).
    word_starts: bool ``[L]``; True where a token begins a word. Always False at ``<s>`` and ``</s>``; always True
        at the first content token (``word_starts[1]`` when L > 2).
    sentence_starts: int64 ``[K]``; sorted, strictly increasing start offsets of the K sentences in ``tokens``.
        The first is 1 (just after ``<s>``); sentence k spans ``[sentence_starts[k], sentence_starts[k+1])``
        and the last one ends at ``L - 1`` (before ``</s>``). Empty when the document has no content tokens.
    """

    tokens: np.ndarray
    word_starts: np.ndarray
    sentence_starts: np.ndarray

    @classmethod
    def from_lists(cls, tokens, word_starts=None, sentence_starts=None) -> Document:
        """Build from Python lists; defaults: every content token starts a word, one sentence."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if word_starts is None:
            word_starts = np.ones(len(tokens), dtype=bool)
            word_starts[[0, -1]] = False
        if sentence_starts is None:
            sentence_starts = [1] if len(tokens) > 2 else []
        return cls(tokens, np.asarray(word_starts, dtype=bool), np.asarray(sentence_starts, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.tokens)

    def replace(self, **changes) -> Document:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class NoiseContext:
    """Runtime facts a noise needs, from the tokenizer and the data config."""

    bos_id: int = 0
    pad_id: int = 1
    eos_id: int = 2
    unk_id: int = 3
    mask_id: int = 4
    vocab_size: int = 5
    max_length: int = 1024
    """Longest allowed document (tokens, with ``<s>``/``</s>``); insertion never grows a document past it. An
    objective's source and target are never longer either."""
    mask_sentence_id: int | None = None
    """``<mask_sentence>``: a whole sentence removed (gap sentences); None without objective tokens."""
    mode_ids: tuple[int, ...] = ()
    """The mode tokens ``[R]``, ``[S]``, ``[X]`` (UL2), in that order; empty without objective tokens."""
    sentinel_ids: tuple[int, ...] = ()
    """``<extra_id_0>``, ``<extra_id_1>``, ...: span sentinels (T5, UL2), in order; empty without objective tokens."""

    def __post_init__(self):
        object.__setattr__(self, "mode_ids", tuple(int(i) for i in self.mode_ids))
        object.__setattr__(self, "sentinel_ids", tuple(int(i) for i in self.sentinel_ids))
        if self.mode_ids and len(self.mode_ids) != 3:
            raise ValueError(f"mode_ids={self.mode_ids}: must be the three ids of [R], [S], [X] (or empty)")
        if self.vocab_size <= max(self.special_ids):
            raise ValueError(f"vocab_size={self.vocab_size} must exceed every special id {self.special_ids}")
        if self.max_length < 2:
            raise ValueError(f"max_length={self.max_length}: must be >= 2 (room for <s> and </s>)")

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Every special id: BART's five, then the objective tokens the tokenizer has (none by default)."""
        extra = () if self.mask_sentence_id is None else (self.mask_sentence_id,)
        return (self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.mask_id, *extra, *self.mode_ids,
                *self.sentinel_ids)  # fmt: skip

    def random_tokens(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` ids drawn uniformly from the vocabulary with every special id excluded."""
        # Floor of a scaled uniform float: exact enough (bias < vocab / 2**53) and 3x cheaper than rng.integers.
        draws = (rng.random(n) * (self.vocab_size - len(self._skips))).astype(np.int64)
        # Shift each draw past the specials at or below it (a bijection onto the non-special ids): the k-th
        # smallest special s_k is passed by every draw >= s_k - k.
        return draws + np.searchsorted(self._skips, draws, side="right")

    @functools.cached_property
    def _skips(self) -> np.ndarray:
        specials = np.unique(np.asarray(self.special_ids, dtype=np.int64))
        return specials - np.arange(len(specials))


class Corruption:
    """What a recipe lists (the type of :attr:`noising.Pipeline.noises`): a :class:`Noise`, or last an
    :class:`Objective`. Subclass one of those two, never this."""


class Noise(Corruption):
    """Base class of every corruption that keeps the original as the target. Subclasses are frozen dataclasses and
    implement ``__call__``."""

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        raise NotImplementedError


@dataclass(frozen=True)
class Example:
    """What an objective makes of one document: the encoder's ``source`` and the decoder's ``target`` (1-D int64).

    source: ``<s> ... </s>`` (an objective announcing a mode, such as UL2, puts its mode token in ``<s>``'s place).
    target: ``<s> ... </s>``.
    """

    source: np.ndarray
    target: np.ndarray


class Objective(Corruption):
    """Base class of a corruption that defines its own target (T5 spans, gap sentences, UL2, prefix LM): a frozen
    dataclass implementing ``__call__(doc, rng, ctx) -> Example``. Same rules as a :class:`Noise`: validated fields,
    randomness from ``rng`` only, the input never modified; source and target no longer than ``ctx.max_length`` (or
    the input, if longer); the only special ids it adds are ``<mask>``, ``<mask_sentence>``, the sentinels and (first
    in the source, in ``<s>``'s place) a mode token. In a recipe it comes last, after any noises."""

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        raise NotImplementedError


def check_fraction(owner: object, field: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= 1``, naming the noise, the field and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(owner).__name__}.{field}={value!r}: must be a number in [0, 1]")


def check_choice(owner: object, field: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{type(owner).__name__}.{field}={value!r}: must be one of {sorted(allowed)}")


def check_positive(owner: object, field: str, value: float, *, strict: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 if strict else value >= 0)
    if not ok:
        raise ValueError(f"{type(owner).__name__}.{field}={value!r}: must be a number {'>' if strict else '>='} 0")


def check_bool(owner: object, field: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is a real bool (YAML ``true``/``false``), not ``"yes"`` or ``1``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{type(owner).__name__}.{field}={value!r}: must be true or false")


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for sample ``index`` in ``epoch``: a pure function of the three, independent of workers."""
    # Same stream as default_rng(SeedSequence([seed, epoch, index])), without default_rng's dispatch (hot path).
    return np.random.Generator(np.random.PCG64([int(seed), int(epoch), int(index)]))
