"""The noising contract over every noise x many seeds, exact outputs on tiny inputs, and validation errors."""

from __future__ import annotations

import numpy as np
import pytest

import noising
from noising import Document, NoiseContext, sample_rng
from noising.testing import DEFAULT_CONTEXT, check_noise

CTX = DEFAULT_CONTEXT  # mask 99, vocab 100, max_length 96
M = CTX.mask_id

NOISES = [
    noising.TokenMasking(ratio=0.3),
    noising.TokenMasking(ratio=0.5, whole_words=True, random_ratio=0.3, keep_ratio=0.2),
    noising.TokenDeletion(ratio=0.3),
    noising.TokenDeletion(ratio=1.0, whole_words=True),
    noising.TextInfilling(),
    noising.TextInfilling(ratio=0.6, poisson_lambda=1.0, whole_words=False, replace_length=-1, mask_random=0.5),
    noising.TextInfilling(ratio=1.0, replace_length=0),
    noising.SentencePermutation(),
    noising.SentencePermutation(ratio=0.5),
    noising.DocumentRotation(),
    noising.RandomInsertion(ratio=0.5, random_ratio=0.5),
    noising.RandomInsertion(ratio=3.0),  # must stop at max_length
]
REORDERING = (noising.SentencePermutation, noising.DocumentRotation)
ZERO = {
    noising.TokenMasking: {"ratio": 0.0},
    noising.TokenDeletion: {"ratio": 0.0},
    noising.TextInfilling: {"ratio": 0.0},
    noising.SentencePermutation: {"ratio": 0.0},
    noising.DocumentRotation: {"probability": 0.0},
    noising.RandomInsertion: {"ratio": 0.0},
}


def tiny() -> Document:
    """<s> [10 11] [12] | [13 14] [15] | [16] [17] </s>: 6 words in 3 sentences, brackets mark words."""
    return Document.from_lists([0, 10, 11, 12, 13, 14, 15, 16, 17, 2], [0, 1, 0, 1, 1, 0, 1, 1, 1, 0], [1, 4, 7])


@pytest.mark.parametrize("noise", NOISES, ids=repr)
def test_every_noise_keeps_the_contract_over_many_seeds(noise):
    check_noise(noise, CTX, seeds=range(12), keeps_multiset=isinstance(noise, REORDERING))


@pytest.mark.parametrize("cls", list(ZERO), ids=lambda c: c.__name__)
def test_ratio_zero_is_the_identity(cls):
    noise, doc = cls(**ZERO[cls]), tiny()
    for seed in range(10):
        out = noise(doc, sample_rng(seed, 0, 0), CTX)
        assert out.tokens.tolist() == doc.tokens.tolist()
        assert out.sentence_starts.tolist() == doc.sentence_starts.tolist()


@pytest.mark.parametrize("noise", NOISES, ids=repr)
def test_output_is_a_pure_function_of_seed_epoch_and_index(noise):
    doc = Document.from_lists(np.arange(10, 60).tolist(), sentence_starts=[1, 11, 30])
    doc = doc.replace(tokens=np.concatenate(([0], doc.tokens[1:-1], [2])))
    keys = [(s, e, i) for s in (0, 1) for e in (0, 1) for i in (0, 7)]
    runs = {k: noise(doc, sample_rng(*k), CTX).tokens.tolist() for k in keys}
    assert runs == {k: noise(doc, sample_rng(*k), CTX).tokens.tolist() for k in runs}
    if getattr(noise, "ratio", 0.5) < 1:  # ratio 1 deletes everything: nothing random left to differ
        assert len({tuple(v) for v in runs.values()}) > 1, "different (seed, epoch, index) should differ"


def test_the_same_pipeline_run_twice_in_any_order_gives_the_same_samples():
    pipe = noising.Pipeline([noising.TextInfilling(), noising.SentencePermutation()])
    docs = [Document.from_lists([0, *range(5, 5 + n), 2], sentence_starts=[1, 1 + n // 2]) for n in range(4, 40)]
    forward = [pipe(d, sample_rng(3, 1, i), CTX).tokens.tolist() for i, d in enumerate(docs)]
    backward = [pipe(docs[i], sample_rng(3, 1, i), CTX).tokens.tolist() for i in reversed(range(len(docs)))]
    assert forward == backward[::-1]


# Exact outputs on a 10-token document: pinned so a change of semantics or of random streams is noticed.


def run(noise, seed=0, doc=None):
    out = noise(tiny() if doc is None else doc, sample_rng(seed, 0, 0), CTX)
    return out.tokens.tolist(), out.word_starts.astype(int).tolist(), out.sentence_starts.tolist()


def test_text_infilling_replaces_each_span_with_one_mask():
    # budget ceil(0.3 * 6) = 2 words: spans [10 11] and [16], each one mask; every sentence keeps its place
    assert run(noising.TextInfilling(), seed=3) == (
        [0, M, 12, 13, 14, 15, M, 17, 2],
        [0, 1, 1, 1, 0, 1, 1, 1, 0],
        [1, 3, 6],
    )


def test_text_infilling_span_across_a_sentence_boundary_keeps_both_sentences():
    # one span over [12] (end of sentence 1) and [13 14] (start of sentence 2): its mask stays in sentence 1
    assert run(noising.TextInfilling(), seed=2) == ([0, 10, 11, M, 15, 16, 17, 2], [0, 1, 0, 1, 1, 1, 1, 0], [1, 4, 5])


def test_text_infilling_replace_length_zero_deletes_spans_and_minus_one_masks_every_token():
    # seed 0 draws one span over the words [13 14] [15] (the whole 2nd sentence)
    assert run(noising.TextInfilling(mask_random=0.0)) == (
        [0, 10, 11, 12, M, 16, 17, 2],
        [0, 1, 0, 1, 1, 1, 1, 0],
        [1, 4, 5],
    )
    assert run(noising.TextInfilling(replace_length=0, mask_random=0.0)) == (
        [0, 10, 11, 12, 16, 17, 2],
        [0, 1, 0, 1, 1, 1, 0],
        [1, 4],  # the emptied sentence is gone
    )
    assert run(noising.TextInfilling(replace_length=-1, mask_random=0.0))[0] == [0, 10, 11, 12, M, M, M, 16, 17, 2]


def test_text_infilling_zero_length_span_inserts_a_mask():
    noise = noising.TextInfilling(ratio=0.5, poisson_lambda=0.01, mask_random=0.0)  # P(length 0) = 0.99
    for seed in range(5):
        tokens, ws, _ = run(noise, seed, doc=Document.from_lists([0, 10, 11, 12, 13, 2]))
        content = [t for t in tokens[1:-1] if t != M]
        # the 2-word budget is met by two 1-word spans (two masks, two words gone) after many 0-length spans,
        # each of which inserted a mask without removing anything
        assert len(content) == 2 and content == sorted(content) and set(content) < {10, 11, 12, 13}
        assert tokens.count(M) > 2
        assert all(w for t, w in zip(tokens, ws, strict=True) if t == M)


def test_token_masking_replaces_in_place():
    assert run(noising.TokenMasking(ratio=0.3, random_ratio=0.0), seed=3) == (
        [0, 10, 11, M, 13, 14, 15, M, M, 2],
        [0, 1, 0, 1, 1, 0, 1, 1, 1, 0],
        [1, 4, 7],
    )


def test_token_masking_whole_words_masks_every_token_of_a_word():
    tokens = run(noising.TokenMasking(ratio=0.3, whole_words=True, random_ratio=0.0), seed=1)[0]
    assert tokens == [0, M, M, 12, 13, 14, 15, M, 17, 2]  # words [10 11] and [16]: ceil(0.3 * 6) = 2


def test_token_deletion_removes_tokens_and_shifts_sentences():
    # ceil(0.3 * 8) = 3 tokens deleted: 10, 11, 15 with seed 1; 15, 16, 17 (the whole 3rd sentence) with seed 2
    assert run(noising.TokenDeletion(ratio=0.3), seed=1) == (
        [0, 12, 13, 14, 16, 17, 2],
        [0, 1, 1, 0, 1, 1, 0],
        [1, 2, 4],
    )
    assert run(noising.TokenDeletion(ratio=0.3), seed=2) == ([0, 10, 11, 12, 13, 14, 2], [0, 1, 0, 1, 1, 0, 0], [1, 4])


def test_sentence_permutation_moves_whole_sentences():
    assert run(noising.SentencePermutation()) == (
        [0, 16, 17, 10, 11, 12, 13, 14, 15, 2],
        [0, 1, 1, 1, 0, 1, 1, 0, 1, 0],
        [1, 3, 6],
    )


def test_document_rotation_keeps_bos_and_eos_in_place():
    # content rotated to start at its 3rd token; the cut (before 12) becomes a sentence boundary
    assert run(noising.DocumentRotation()) == (
        [0, 12, 13, 14, 15, 16, 17, 10, 11, 2],
        [0, 1, 1, 0, 1, 1, 1, 1, 0, 0],
        [1, 2, 5, 7],
    )


def test_random_insertion_inserts_masks_and_random_tokens():
    # ceil(0.3 * 8) = 3 inserts (one random); an insert belongs to the sentence of the token after it
    assert run(noising.RandomInsertion(ratio=0.3, random_ratio=0.5)) == (
        [0, 61, 10, 11, M, 12, 13, 14, M, 15, 16, 17, 2],
        [0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0],
        [1, 6, 10],
    )


def test_random_insertion_never_grows_past_max_length():
    ctx = NoiseContext(mask_id=99, vocab_size=100, max_length=12)
    for seed in range(20):
        assert len(noising.RandomInsertion(ratio=1.0)(tiny(), sample_rng(seed, 0, 0), ctx)) == 12


def test_random_replacements_never_draw_special_ids():
    ctx = NoiseContext(bos_id=0, pad_id=1, eos_id=2, unk_id=3, mask_id=7, vocab_size=9, max_length=4096)
    doc = Document.from_lists([0, *([8] * 2000), 2])
    for noise in (
        noising.TokenMasking(ratio=1.0, random_ratio=1.0),
        noising.TextInfilling(ratio=1.0, mask_random=1.0, replace_length=-1),
        noising.RandomInsertion(ratio=1.0, random_ratio=1.0),
    ):
        inner = noise(doc, sample_rng(0, 0, 0), ctx).tokens[1:-1]
        assert set(np.unique(inner).tolist()) <= {4, 5, 6, 8}, type(noise).__name__
        assert set(np.unique(inner).tolist()) >= {4, 5, 6}


def test_infilling_then_permutation_moves_masks_with_their_sentence():
    doc = tiny()
    rng = sample_rng(0, 0, 0)
    filled = noising.TextInfilling(mask_random=0.0)(doc, rng, CTX)
    out = noising.SentencePermutation()(filled, rng, CTX)

    def sentences(d):
        ends = [*d.sentence_starts[1:], len(d) - 1]
        return sorted(tuple(d.tokens[a:b].tolist()) for a, b in zip(d.sentence_starts, ends, strict=True))

    assert sentences(out) == sentences(filled) == [(10, 11, 12), (16, 17), (M,)]


# Validation: every error names Class.field, the value and what is allowed.


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (noising.TextInfilling, {"ratio": 1.5}, "TextInfilling.ratio=1.5: must be a number in [0, 1]"),
        (noising.TextInfilling, {"poisson_lambda": 0}, "TextInfilling.poisson_lambda=0: must be a number > 0"),
        (noising.TextInfilling, {"replace_length": 2}, "TextInfilling.replace_length=2: must be one of [-1, 0, 1]"),
        (noising.TextInfilling, {"whole_words": "yes"}, "TextInfilling.whole_words='yes': must be true or false"),
        (noising.TokenMasking, {"random_ratio": -0.1}, "TokenMasking.random_ratio=-0.1"),
        (noising.TokenMasking, {"random_ratio": 0.6, "keep_ratio": 0.6}, "must sum to at most 1"),
        (noising.TokenDeletion, {"ratio": "0.1"}, "TokenDeletion.ratio='0.1'"),
        (noising.SentencePermutation, {"ratio": True}, "SentencePermutation.ratio=True"),
        (noising.DocumentRotation, {"probability": 2}, "DocumentRotation.probability=2"),
        (noising.RandomInsertion, {"ratio": -1}, "RandomInsertion.ratio=-1: must be a number >= 0"),
    ],
)
def test_bad_parameters_fail_at_construction_naming_class_field_value_and_range(cls, kwargs, message):
    with pytest.raises(ValueError) as err:
        cls(**kwargs)
    assert message in str(err.value)


def test_noises_are_frozen():
    with pytest.raises(AttributeError):
        noising.TextInfilling().ratio = 0.5  # type: ignore[misc]


def test_edit_deletes_and_inserts_in_one_pass_keeping_sentences():
    doc = tiny()
    keep = np.ones(10, dtype=bool)
    keep[[4, 5, 6]] = False  # the whole 2nd sentence
    out = noising.edit(doc, keep, insert_at=np.array([9, 1, 9]), insert_values=np.array([50, 51, 52]))
    assert out.tokens.tolist() == [0, 51, 10, 11, 12, 16, 17, 50, 52, 2]
    assert out.word_starts.astype(int).tolist() == [0, 1, 1, 0, 1, 1, 1, 1, 1, 0]
    assert out.sentence_starts.tolist() == [1, 5]  # the emptied sentence is gone


@pytest.mark.parametrize("specials", [(0, 1, 2, 3, 4), (0, 1, 2, 3, 9), (4, 1, 2, 3, 4), (9, 8, 7, 6, 5)])
def test_random_tokens_cover_every_non_special_id_uniformly(specials):
    bos, pad, eos, unk, mask = specials
    ctx = NoiseContext(bos_id=bos, pad_id=pad, eos_id=eos, unk_id=unk, mask_id=mask, vocab_size=10)
    draws = ctx.random_tokens(np.random.default_rng(0), 20_000)
    allowed = sorted(set(range(10)) - set(specials))
    counts = np.bincount(draws, minlength=10)
    assert np.flatnonzero(counts).tolist() == allowed
    assert counts[allowed].min() > 0.8 * 20_000 / len(allowed)


def test_sample_rng_is_the_seed_sequence_of_seed_epoch_index():
    expected = np.random.default_rng(np.random.SeedSequence([5, 2, 1234])).integers(0, 2**62, 4)
    assert sample_rng(5, 2, 1234).integers(0, 2**62, 4).tolist() == expected.tolist()
