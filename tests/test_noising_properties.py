"""Property tests (hypothesis): every noise with any valid parameters on any document, including the odd ones
(empty documents, one token, only special ids, empty sentences, no word starts)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import noising
from noising import Document, sample_rng
from noising.testing import DEFAULT_CONTEXT as CTX
from noising.testing import assert_valid_document

fractions = st.floats(0.0, 1.0)
noises = st.one_of(
    st.builds(noising.TokenMasking, fractions, st.booleans(), st.floats(0.0, 0.5), st.floats(0.0, 0.5)),
    st.builds(noising.TokenDeletion, fractions, st.booleans()),
    st.builds(
        noising.TextInfilling, fractions, st.floats(0.01, 8.0), st.booleans(), st.sampled_from([-1, 0, 1]), fractions
    ),
    st.builds(noising.SentencePermutation, fractions),
    st.builds(noising.DocumentRotation, fractions),
    st.builds(noising.RandomInsertion, st.floats(0.0, 3.0), fractions),
)


@st.composite
def documents(draw, strict: bool = True) -> Document:
    """<s> content </s>; content ids from the whole vocabulary or only special ids; any word/sentence marks.

    strict: sentence_starts as the contract says (sorted, unique, first is 1); otherwise empty sentences too.
    """
    ids = st.sampled_from(CTX.special_ids) if draw(st.booleans()) else st.integers(0, CTX.vocab_size - 1)
    content = draw(st.lists(ids, max_size=40))
    n = len(content) + 2
    word_starts = [False, *draw(st.lists(st.booleans(), min_size=n - 2, max_size=n - 2)), False]
    word_starts[1] = n > 2  # the contract: the first content token starts a word (no other word start needed)
    if n == 2:
        starts = []
    elif strict:
        starts = sorted({1, *draw(st.lists(st.integers(1, n - 2), max_size=8))})
    else:  # repeated starts and a start at L - 1 are empty sentences
        starts = sorted([1, *draw(st.lists(st.integers(1, n - 1), max_size=8))])
    return Document.from_lists([CTX.bos_id, *content, CTX.eos_id], word_starts, starts)


def check(noise, doc, seed, strict):
    before = doc.tokens.copy(), doc.word_starts.copy(), doc.sentence_starts.copy()
    out = noise(doc, sample_rng(seed, 0, 0), CTX)
    after = doc.tokens, doc.word_starts, doc.sentence_starts
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), "input modified"
    assert_valid_document(out, CTX, repr(noise), allow_empty_sentences=not strict)
    assert len(out) <= max(len(doc), CTX.max_length)
    assert np.array_equal(out.tokens, noise(doc, sample_rng(seed, 0, 0), CTX).tokens)
    if isinstance(noise, (noising.SentencePermutation, noising.DocumentRotation)):
        assert np.array_equal(np.sort(out.tokens), np.sort(doc.tokens))
    return out


@settings(max_examples=300, deadline=None)
@given(noises, documents(), st.integers(0, 2**32 - 1))
def test_any_noise_on_any_valid_document_returns_a_valid_document(noise, doc, seed):
    check(noise, doc, seed, strict=True)


@settings(max_examples=150, deadline=None)
@given(noises, documents(strict=False), st.integers(0, 2**32 - 1))
def test_documents_with_empty_sentences_do_not_break_any_noise(noise, doc, seed):
    check(noise, doc, seed, strict=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(noises, max_size=4), documents(), st.integers(0, 2**32 - 1))
def test_any_pipeline_of_noises_returns_a_valid_document(stack, doc, seed):
    out = noising.Pipeline(stack)(doc, sample_rng(seed, 1, 2), CTX)
    assert_valid_document(out, CTX, repr(stack))


@settings(max_examples=100, deadline=None)
@given(st.builds(noising.TextInfilling, fractions, st.floats(0.1, 8.0), st.booleans(), st.sampled_from([0, 1]),
                 st.just(0.0)),
       documents(), st.integers(0, 2**32 - 1))  # fmt: skip
def test_text_infilling_removes_exactly_its_word_budget(noise, doc, seed):
    from noising._ops import budget, word_positions

    pos = word_positions(doc, noise.whole_words)
    out = noise(doc.replace(tokens=np.concatenate(([0], np.arange(5, 3 + len(doc)), [2]))), sample_rng(seed, 0, 0), CTX)
    survivors = out.tokens[(out.tokens >= 5) & (out.tokens < 3 + len(doc))] - 4  # input offsets that survived
    # (no random replacements here: one could collide with a surrogate id)
    kept_words = np.isin(pos[:-1], survivors)
    assert (~kept_words).sum() == budget(len(pos) - 1, noise.ratio)
