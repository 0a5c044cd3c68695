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
    starts = doc.word_starts.copy()
    starts[1] = starts[-1] = True
    return np.flatnonzero(starts[1:]) + 1


def kept_word_starts(word_starts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``word_starts[keep]`` with the first kept token of every word marked as a word start: what is left of a word
    whose first token is deleted is a word of its own, not the tail of the previous one (so the first content token
    of the result still starts a word). ``keep`` is a deletion mask that keeps ``<s>`` and ``</s>``."""
    word = word_starts.astype(np.int64).cumsum()[keep]  # word index of every kept token (a bool cumsum is 2x slower)
    out = word_starts[keep]
    out[1:-1] |= word[1:-1] != word[:-2]
    return out


def budget(count: int, ratio: float) -> int:
    """``ceil(count * ratio)`` as fairseq computes it, immune to float noise (``10 * 0.3 = 3.0000000000000004``)."""
    return min(count, math.ceil(count * ratio - 1e-9))


def choose_units(
    doc: Document, whole_words: bool, ratio: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """Unit start offsets ``pos`` (words or tokens, plus the end) and ``ceil(ratio * units)`` distinct unit indices
    drawn uniformly; None when the budget is 0 (so the caller returns its input unchanged)."""
    pos = word_positions(doc, whole_words)
    k = budget(len(pos) - 1, ratio)
    if k == 0:
        return None
    return pos, rng.permutation(len(pos) - 1)[:k]


def place_items(rng: np.random.Generator, n_free: int, lengths: np.ndarray) -> np.ndarray:
    """Unit offset of the start of each of m non-overlapping spans of ``lengths`` among ``n_free + sum(lengths)``
    units, sorted. Each span independently lands at a uniformly random point of the ``n_free`` free units (one of
    their ``n_free + 1`` boundaries); spans never overlap and two may touch. A span of length 0 is an insertion
    point (before the unit at its offset).
    """
    free_before = (np.sort(rng.random(len(lengths))) * (n_free + 1)).astype(np.int64)  # uniform in [0, n_free]
    return free_before + (np.cumsum(lengths) - lengths)


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

    ``insert_at`` are offsets in the INPUT, each >= 1: a value inserted at ``p`` lands just before input token
    ``p`` and belongs to the sentence that starts at ``p`` (use ``len(doc) - 1`` to append before ``</s>``);
    values sharing an offset keep their order. Inserted tokens start words, and so does the first kept token of a
    word whose first token goes (:func:`kept_word_starts`). A sentence whose tokens all go is dropped. ``keep`` must
    keep ``<s>`` and ``</s>``.
    """
    out = doc.tokens if tokens is None else tokens
    ws = doc.word_starts if word_starts is None else word_starts
    starts = doc.sentence_starts
    if keep is not None:
        kept_upto = np.cumsum(keep)  # kept_upto[p - 1]: tokens kept before input offset p (p >= 1)
        out, ws, starts = out[keep], kept_word_starts(ws, keep), kept_upto[starts - 1]
    if insert_at is not None and len(insert_at):
        insert_values = np.asarray(insert_values, dtype=np.int64)
        if len(insert_at) > 1 and np.any(insert_at[1:] < insert_at[:-1]):
            order = np.argsort(insert_at, kind="stable")
            insert_at, insert_values = insert_at[order], insert_values[order]
        at = insert_at if keep is None else kept_upto[insert_at - 1]  # offsets in the filtered array
        new_pos = at + np.arange(len(at))  # the j-th insert has j inserts before it
        is_old = np.ones(len(out) + len(at), dtype=bool)
        is_old[new_pos] = False
        merged, merged_ws = np.empty(len(is_old), dtype=np.int64), np.ones(len(is_old), dtype=bool)
        merged[new_pos] = insert_values
        merged[is_old], merged_ws[is_old] = out, ws
        out, ws = merged, merged_ws
        starts = starts + np.searchsorted(at, starts)  # inserts at a sentence start open that sentence
    if keep is not None:
        starts = clean_sentence_starts(starts, len(out))
    return Document(out, ws, starts)


def clean_sentence_starts(starts: np.ndarray, length: int) -> np.ndarray:
    """Drop starts of emptied sentences: keep sorted, unique offsets inside ``[1, length - 1)``."""
    starts = starts[(starts >= 1) & (starts < length - 1)]
    if len(starts) > 1:
        distinct = np.ones(len(starts), dtype=bool)
        distinct[1:] = starts[1:] != starts[:-1]
        starts = starts[distinct]
    return starts


def replacement_values(rng: np.random.Generator, ctx: NoiseContext, n: int, random_ratio: float) -> np.ndarray:
    """``n`` mask ids, each replaced by a random non-special id with probability ``random_ratio``."""
    if random_ratio == 0:
        return np.full(n, ctx.mask_id, dtype=np.int64)
    return np.where(rng.random(n) < random_ratio, ctx.random_tokens(rng, n), ctx.mask_id)


def random_segmentation(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    """``parts`` positive integers summing to ``total``, uniform over all such compositions (T5's
    ``_random_segmentation``): ``parts - 1`` distinct cut points among the ``total - 1`` inner boundaries."""
    if parts <= 1:
        return np.array([total], dtype=np.int64)
    cuts = np.sort(rng.permutation(total - 1)[: parts - 1] + 1)
    return np.diff(np.concatenate(([0], cuts, [total]))).astype(np.int64)


def t5_spans(
    rng: np.random.Generator, content: int, ratio: float, mean_span: float, max_spans: int
) -> tuple[np.ndarray, np.ndarray]:
    """(start offsets in ``[0, content)``, lengths) of the noise spans of T5's span corruption over ``content`` tokens.

    ``round(ratio * content)`` tokens (at least 1 when ``ratio > 0``; at most ``content - 2``) in
    ``round(noise / mean_span)`` spans (at least 1, at most ``max_spans``), each a uniformly random composition
    as in T5's ``random_spans_noise_mask``: text always comes before a span (spans never touch) and may follow the
    last one. The counts leave room for one closing sentinel, so ``noise + spans + 1 <= content``: the target
    (``<s>``, a sentinel before each span, the closing sentinel, ``</s>``) is never longer than the document. Empty
    when ``content < 3`` or ``ratio == 0``.
    """
    empty = np.zeros(0, dtype=np.int64)
    if content < 3 or ratio == 0 or max_spans < 1:
        return empty, empty
    noise = min(max(round(ratio * content), 1), content - 2)
    spans = min(max(round(noise / mean_span), 1), noise, content - noise - 1, max_spans)
    noise_lengths = random_segmentation(rng, noise, spans)
    # spans + 1 stretches of text: the first `spans` positive (before each span), the last >= 0 (after the last).
    text_lengths = random_segmentation(rng, content - noise + 1, spans + 1)
    text_lengths[-1] -= 1
    starts = np.cumsum(text_lengths[:-1]) + np.cumsum(noise_lengths) - noise_lengths
    return starts.astype(np.int64), noise_lengths


def spans_to_example(
    tokens: np.ndarray, starts: np.ndarray, lengths: np.ndarray, sentinels: tuple[int, ...], first: int
) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) of span corruption on ``tokens`` (``<s> ... </s>``) with noise spans at content offsets
    ``starts`` (sorted, not touching) of ``lengths``: the source keeps the text with span ``i`` replaced by
    ``sentinels[i]`` and starts with ``first`` (``<s>``, or a mode token); the target is ``<s>``, then each span
    after its sentinel, then the closing sentinel ``sentinels[len(spans)]`` and ``</s>`` (T5's format)."""
    content = tokens[1:-1]
    bos, eos = tokens[0], tokens[-1]
    n = len(starts)
    if n == 0:
        return np.concatenate(([first], content, [eos])).astype(np.int64), np.array([bos, eos], dtype=np.int64)
    ids = np.asarray(sentinels[: n + 1], dtype=np.int64)
    bounds = np.zeros(len(content) + 1, dtype=np.int64)
    np.add.at(bounds, starts, 1)
    np.add.at(bounds, starts + lengths, -1)
    is_noise = np.cumsum(bounds[:-1]) > 0
    # Source: text tokens, each span's first token replaced by its sentinel, the rest of the span dropped.
    source = content.copy()
    source[starts] = ids[:n]
    keep = ~is_noise
    keep[starts] = True
    # Target: span tokens, each preceded by its sentinel; then the closing sentinel.
    target = np.insert(content[is_noise], np.cumsum(lengths) - lengths, ids[:n])
    return (
        np.concatenate(([first], source[keep], [eos])).astype(np.int64),
        np.concatenate(([bos], target, [ids[n]], [eos])).astype(np.int64),
    )
