"""Array helpers shared by the corruptions: word segmentation, span placement, and one vectorised edit.

Every corruption is "choose what to change" (its own module) followed by :func:`edit`, which deletes,
replaces and inserts tokens in one pass and carries ``word_starts``/``sentence_starts`` along.
"""

from __future__ import annotations

import math

import numpy as np

from noising.base import Document, NoiseContext


def word_positions(doc: Document, whole_words: bool) -> np.ndarray:
    """Token offsets of the W words of ``doc`` plus a final sentinel ``L - 1`` (the ``</s>``): ``int64[W + 1]``.

    Word ``w`` spans tokens ``[pos[w], pos[w + 1])``. Without ``whole_words`` every content token is a word.
    With it, the first content token always begins a word (so no token is left outside every word).
    """
    n = len(doc.tokens)
    if not whole_words or n <= 2:
        return np.arange(1, max(n, 2), dtype=np.int64)
    starts = doc.word_starts[1:-1].copy()
    starts[0] = True
    return np.append(np.flatnonzero(starts) + 1, n - 1)


def budget(count: int, ratio: float) -> int:
    """``ceil(count * ratio)`` as fairseq computes it, immune to float noise (``10 * 0.3 = 3.0000000000000004``)."""
    return min(count, math.ceil(count * ratio - 1e-9))


def place_items(rng: np.random.Generator, n_free: int, lengths: np.ndarray) -> np.ndarray:
    """Start of each of ``m`` non-overlapping spans of ``lengths`` among ``n_free + sum(lengths)`` units, uniformly.

    The units not covered and the m spans form a sequence of ``n_free + m`` items; the spans take m item slots
    chosen uniformly without replacement (keeping their order). Returns the unit offset of each span start,
    sorted. A span of length 0 is an insertion point (before the unit at its offset).
    """
    m = len(lengths)
    slots = np.sort(rng.choice(n_free + m, size=m, replace=False))
    before = np.cumsum(lengths) - lengths  # units covered by earlier spans
    return slots - np.arange(m) + before


def edit(
    doc: Document,
    keep: np.ndarray | None = None,
    tokens: np.ndarray | None = None,
    word_starts: np.ndarray | None = None,
    insert_at: np.ndarray | None = None,
    insert_values: np.ndarray | None = None,
) -> Document:
    """A new document: ``tokens``/``word_starts`` (default: the input's) filtered by the bool mask ``keep``, then
    ``insert_values`` inserted; ``sentence_starts`` follow.

    ``insert_at`` are offsets in the INPUT: a value inserted at ``p`` lands just before input token ``p`` and
    belongs to the sentence that starts at ``p`` (use ``len(doc) - 1`` to append before ``</s>``); values sharing
    an offset keep their order. Inserted tokens start words. A sentence whose tokens all go is dropped.
    """
    old_tokens = doc.tokens if tokens is None else tokens
    ws = doc.word_starts if word_starts is None else word_starts
    if insert_at is not None and len(insert_at) > 1 and np.any(insert_at[1:] < insert_at[:-1]):
        order = np.argsort(insert_at, kind="stable")
        insert_at, insert_values = insert_at[order], np.asarray(insert_values)[order]
    n = len(old_tokens)
    if keep is not None:
        out_tokens, out_ws = old_tokens[keep], ws[keep]
        emitted = keep.astype(np.int64)
    else:
        out_tokens, out_ws = old_tokens, ws
        emitted = np.ones(n, dtype=np.int64)
    if insert_at is not None and len(insert_at):
        n_ins = len(insert_at)
        emitted += np.bincount(insert_at, minlength=n)
        kept_before = np.cumsum(emitted) - emitted  # outputs produced by input offsets < p
        out_pos = kept_before[insert_at] + (np.arange(n_ins) - np.searchsorted(insert_at, insert_at))
        # Within one insertion point several values keep their order: offset by their rank at that point.
        total = len(out_tokens) + n_ins
        is_new = np.zeros(total, dtype=bool)
        is_new[out_pos] = True
        merged = np.empty(total, dtype=np.int64)
        merged[out_pos] = insert_values
        merged[~is_new] = out_tokens
        merged_ws = np.empty(total, dtype=bool)
        merged_ws[out_pos] = True
        merged_ws[~is_new] = out_ws
        out_tokens, out_ws = merged, merged_ws
    else:
        kept_before = np.cumsum(emitted) - emitted
    starts = kept_before[doc.sentence_starts] if len(doc.sentence_starts) else doc.sentence_starts
    return Document(out_tokens, out_ws, clean_sentence_starts(starts, len(out_tokens)))


def clean_sentence_starts(starts: np.ndarray, length: int) -> np.ndarray:
    """Drop starts of emptied sentences: keep sorted, unique offsets inside ``[1, length - 1)``."""
    if len(starts) == 0:
        return starts.astype(np.int64, copy=False)
    starts = starts[(starts >= 1) & (starts < length - 1)]
    if len(starts) > 1:
        starts = starts[np.concatenate(([True], starts[1:] != starts[:-1]))]
    return starts


def replacement_values(rng: np.random.Generator, ctx: NoiseContext, n: int, random_ratio: float) -> np.ndarray:
    """``n`` mask ids, each replaced by a random non-special id with probability ``random_ratio``."""
    values = np.full(n, ctx.mask_id, dtype=np.int64)
    if random_ratio > 0 and n:
        is_random = rng.random(n) < random_ratio
        k = int(is_random.sum())
        if k:
            values[is_random] = ctx.random_tokens(rng, k)
    return values
