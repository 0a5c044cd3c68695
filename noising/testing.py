"""The noise contract as a reusable check, for built-ins and plug-in authors alike.

    from noising.testing import check_noise
    check_noise(MyNoise(p=0.2))            # raises AssertionError naming the broken invariant
    check_objective(MyObjective(p=0.2))    # the same for an objective: (source, target)

It runs the noise over edge-case and random documents with many seeds and checks: the input is unchanged,
``<s>`` first and ``</s>`` last, ids inside ``[0, vocab_size)``, consistent ``word_starts``/``sentence_starts`` (the
first content token always starts a word), no growth past ``ctx.max_length``, and the same seed gives the same
output.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from noising.base import Document, Noise, NoiseContext, Objective, sample_rng

DEFAULT_CONTEXT = NoiseContext(bos_id=0, pad_id=1, eos_id=2, unk_id=3, mask_id=99, vocab_size=100, max_length=96)


def random_document(rng: np.random.Generator, ctx: NoiseContext, max_content: int = 60) -> Document:
    """A random valid document: words of 1-3 tokens, sentences of 1+ words, ids anywhere in the vocabulary."""
    n = int(rng.integers(0, max_content + 1))
    tokens = np.concatenate(([ctx.bos_id], rng.integers(0, ctx.vocab_size, n), [ctx.eos_id])).astype(np.int64)
    word_starts = np.zeros(n + 2, dtype=bool)
    word_starts[1:-1] = rng.random(n) < 0.7
    if n:
        word_starts[1] = True
    candidates = np.flatnonzero(word_starts[2:-1]) + 2
    extra = candidates[rng.random(len(candidates)) < 0.2]
    sentence_starts = np.concatenate(([1], extra)).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    return Document(tokens, word_starts, sentence_starts)


def edge_documents(ctx: NoiseContext) -> list[Document]:
    """Documents that break naive code: empty, one token, only special ids, one-token sentences, no word starts."""
    b, e, specials = ctx.bos_id, ctx.eos_id, list(ctx.special_ids)
    return [
        Document.from_lists([b, e]),
        Document.from_lists([b, 7 % ctx.vocab_size, e]),
        Document.from_lists([b, *specials, *specials, e]),
        Document.from_lists([b, 5, 6, 7, 8, e], sentence_starts=[1, 2, 3, 4]),
        Document.from_lists([b, 5, 6, 7, 8, 9, e], word_starts=[0, 1, 0, 0, 0, 0, 0]),
    ]


def assert_valid_document(
    doc: Document, ctx: NoiseContext, what: str = "document", allow_empty_sentences: bool = False
) -> None:
    """Raise ``AssertionError`` unless ``doc`` satisfies the :class:`~noising.Document` contract under ``ctx``.

    ``allow_empty_sentences``: accept repeated sentence starts and a start at ``L - 1`` (empty sentences).
    """
    assert isinstance(doc, Document), f"{what}: a {type(doc).__name__}, not a noising.Document"
    t, ws, ss = doc.tokens, doc.word_starts, doc.sentence_starts
    assert isinstance(t, np.ndarray) and t.dtype == np.int64 and t.ndim == 1, f"{what}: tokens must be 1-D int64"
    assert len(t) >= 2 and t[0] == ctx.bos_id and t[-1] == ctx.eos_id, f"{what}: must be <s> ... </s>: {t.tolist()}"
    assert t.min() >= 0 and t.max() < ctx.vocab_size, f"{what}: ids outside [0, {ctx.vocab_size}): {t.tolist()}"
    assert ws.dtype == bool and ws.shape == t.shape, f"{what}: word_starts must be bool, one per token"
    assert not ws[0] and not ws[-1], f"{what}: <s> and </s> never start a word"
    assert len(t) == 2 or ws[1], f"{what}: the first content token always starts a word: {ws.astype(int).tolist()}"
    assert ss.dtype == np.int64 and ss.ndim == 1, f"{what}: sentence_starts must be 1-D int64"
    if allow_empty_sentences:
        ok = len(ss) == 0 or (ss[0] >= 1 and np.all(np.diff(ss) >= 0) and ss[-1] <= len(t) - 1)
        assert ok, f"{what}: bad sentence_starts {ss.tolist()}"
    elif len(t) == 2:
        assert len(ss) == 0, f"{what}: an empty document has no sentences, got {ss.tolist()}"
    else:
        assert len(ss) and ss[0] == 1, f"{what}: the first sentence starts at 1, got {ss.tolist()}"
        assert np.all(np.diff(ss) > 0) and ss[-1] < len(t) - 1, f"{what}: bad sentence_starts {ss.tolist()}"


def check_noise(
    noise: Noise,
    ctx: NoiseContext = DEFAULT_CONTEXT,
    seeds: Iterable[int] = range(20),
    docs: Iterable[Document] | None = None,
    keeps_multiset: bool = False,
) -> None:
    """Check ``noise`` against the contract over edge-case and random documents x ``seeds``.

    ``keeps_multiset``: also check that the output is a reordering of the input (permutations, rotations).
    """
    for what, doc, d, seed, out in _runs(noise, ctx, seeds, docs):
        assert_valid_document(out, ctx, what)
        assert len(out) <= max(ctx.max_length, len(doc)), f"{what}: grew past max_length={ctx.max_length}"
        again = noise(doc, sample_rng(seed, 0, d), ctx)
        for field in DOCUMENT_FIELDS:
            assert np.array_equal(getattr(out, field), getattr(again, field)), f"{what}: same seed, other {field}"
        if keeps_multiset:
            assert np.array_equal(np.sort(out.tokens), np.sort(doc.tokens)), f"{what}: tokens changed, not moved"


DOCUMENT_FIELDS = ("tokens", "word_starts", "sentence_starts")


def _runs(fn, ctx: NoiseContext, seeds: Iterable[int], docs: Iterable[Document] | None):
    """``fn`` on edge-case and random documents (or ``docs``) x ``seeds``: yields (what, input, its index, seed,
    output), having checked that the input is a valid document and that ``fn`` left it unchanged."""
    name = type(fn).__name__
    if docs is None:
        make = np.random.default_rng(12345)
        docs = edge_documents(ctx) + [random_document(make, ctx) for _ in range(10)]
    for d, doc in enumerate(list(docs)):
        assert_valid_document(doc, ctx, f"input document {d}")
        for seed in seeds:
            what = f"{name} on document {d} with seed {seed}"
            before = [getattr(doc, f).copy() for f in DOCUMENT_FIELDS]
            out = fn(doc, sample_rng(seed, 0, d), ctx)
            for field, old in zip(DOCUMENT_FIELDS, before, strict=True):
                assert np.array_equal(old, getattr(doc, field)), f"{what}: modified its input's {field}"
            yield what, doc, d, seed, out


OBJECTIVE_CONTEXT = NoiseContext(
    bos_id=0, pad_id=1, eos_id=2, unk_id=3, mask_id=99, vocab_size=124, max_length=96,
    mask_sentence_id=100, mode_ids=(101, 102, 103), sentinel_ids=tuple(range(104, 124)),
)  # fmt: skip
"""A context with the objective tokens, laid out as the tokenizer lays them out: ``<mask_sentence>``, ``[R]``, ``[S]``,
``[X]``, then 20 sentinels, after ``<mask>``."""


def check_objective(
    objective: Objective,
    ctx: NoiseContext = OBJECTIVE_CONTEXT,
    seeds: Iterable[int] = range(20),
    docs: Iterable[Document] | None = None,
) -> None:
    """Check ``objective`` against the contract over edge-case and random documents x ``seeds``: the input is
    unchanged, and the :class:`~noising.Example` it returns passes the run-time checks of plug-in objectives
    (``noising.pipeline.checked_objective_call``: int64 source and target, ``<s>`` (or a mode token, in the source)
    first and ``</s>`` last, ids in range, no special id added where it is not allowed, no longer than
    ``ctx.max_length``); and the same seed gives the same output. Raises ``AssertionError`` naming the broken rule."""
    from noising.pipeline import PluginContractError, checked_objective_call

    for what, doc, d, seed, out in _runs(objective, ctx, seeds, docs):
        try:
            checked = checked_objective_call(objective, doc, sample_rng(seed, 0, d), ctx)
        except PluginContractError as e:
            raise AssertionError(f"{what}: {e}") from None
        for field in ("source", "target"):
            got = getattr(out, field)
            assert isinstance(got, np.ndarray) and got.dtype == np.int64, f"{what}: {field} must be int64"
            assert np.array_equal(got, getattr(checked, field)), f"{what}: same seed, other {field}"
