"""Objectives (a corruption that defines its target): the contract, exact outputs, what each source and target
hold, the pipeline and schedule around them, the run-time checks of plug-in objectives, and the tokenizer's objective
tokens."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

import noising
from noising import Document, Example, Objective, PluginContractError
from noising.pipeline import check_plugins, checked_objective_call
from noising.schedule import NoiseSchedule, ScheduledPipeline
from noising.testing import OBJECTIVE_CONTEXT as CTX
from noising.testing import check_objective, random_document

BUILT_INS = [
    noising.T5SpanCorruption(),
    noising.T5SpanCorruption(ratio=0.5, mean_span=1.0),
    noising.T5SpanCorruption(ratio=1.0, mean_span=8.0),
    noising.T5SpanCorruption(ratio=0.0),
    noising.GapSentences(),
    noising.GapSentences(ratio=1.0, target="document"),
    noising.UL2Mixture(),
    noising.UL2Mixture(weights=(0.0, 0.0, 1.0)),
    noising.PrefixLM(),
]


@pytest.mark.parametrize("objective", BUILT_INS, ids=repr)
def test_built_in_objectives_keep_the_contract(objective):
    check_objective(objective)


def _docs(n: int, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    # Content ids below CTX.mask_id, so no content token is an objective token.
    ctx = dataclasses.replace(CTX, vocab_size=99, mask_sentence_id=None, mode_ids=(), sentinel_ids=(), mask_id=98)
    return [random_document(rng, ctx, max_content=90) for _ in range(n)]


def fill_spans(source: np.ndarray, target: np.ndarray) -> list[int]:
    """The document back from a span-corruption pair: each sentinel of the source replaced by what follows it in the
    target, up to the next sentinel."""
    sentinels = set(CTX.sentinel_ids)
    spans, current = {}, None
    for t in target[1:-1].tolist():
        if t in sentinels:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in source[1:-1].tolist():
        out += spans[t] if t in sentinels else [t]
    return out


def test_t5_spans_exact_output_on_a_fixed_document():
    doc = Document.from_lists([0, *range(10, 30), 2])
    ex = noising.T5SpanCorruption()(doc, noising.sample_rng(0, 0, 1), CTX)
    # 20 content tokens: round(0.15 * 20) = 3 dropped, in round(3 / 3) = 1 span, then the closing sentinel.
    assert ex.source.tolist() == [0, *range(10, 24), 104, 27, 28, 29, 2]
    assert ex.target.tolist() == [0, 104, 24, 25, 26, 105, 2]


def test_t5_spans_source_and_target_give_back_the_document_with_sentinels_in_order():
    objective = noising.T5SpanCorruption()
    for i, doc in enumerate(_docs(300)):
        ex = objective(doc, noising.sample_rng(1, 0, i), CTX)
        assert fill_spans(ex.source, ex.target) == doc.tokens[1:-1].tolist()
        used = [t for t in ex.target.tolist() if t in CTX.sentinel_ids]
        assert used == list(CTX.sentinel_ids[: len(used)])  # <extra_id_0>, <extra_id_1>, ..., the closing one last
        assert [t for t in ex.source.tolist() if t in CTX.sentinel_ids] == used[:-1]
        assert len(ex.target) <= len(doc) and len(ex.source) <= len(doc)
        content = len(doc) - 2
        if content >= 3:
            assert len(used) >= 2 and ex.target[-2] == used[-1]
            assert sum(t not in CTX.sentinel_ids for t in ex.target[1:-1]) == min(
                max(round(0.15 * content), 1), content - 2
            )
        else:
            assert ex.target.tolist() == [0, 2] and np.array_equal(ex.source, doc.tokens)


def test_spans_never_touch_and_text_comes_first():
    for i, doc in enumerate(_docs(200)):
        ex = noising.T5SpanCorruption(ratio=0.5, mean_span=1.0)(doc, noising.sample_rng(2, 0, i), CTX)
        is_sentinel = np.isin(ex.source, CTX.sentinel_ids)
        assert not np.any(is_sentinel[:-1] & is_sentinel[1:])  # two sentinels in a row: two spans touching
        assert len(ex.source) < 3 or not is_sentinel[1]


def test_prefix_lm_splits_the_document_in_two_nonempty_parts():
    for i, doc in enumerate(_docs(200)):
        ex = noising.PrefixLM()(doc, noising.sample_rng(0, 0, i), CTX)
        assert ex.source[0] == 0 and ex.target[0] == 0
        assert ex.source[1:-1].tolist() + ex.target[1:-1].tolist() == doc.tokens[1:-1].tolist()
        if len(doc) >= 4:
            assert len(ex.source) >= 3 and len(ex.target) >= 3


def test_gap_sentences_masks_the_sentence_most_like_the_rest():
    # Sentences (one token a word): [5 6 7] [8 9] [5 6 8] [10 11]; the third shares 3 of its words with the rest.
    doc = Document.from_lists([0, 5, 6, 7, 8, 9, 5, 6, 8, 10, 11, 2], sentence_starts=[1, 4, 6, 9])
    ex = noising.GapSentences(ratio=0.25)(doc, noising.sample_rng(0, 0, 0), CTX)
    assert ex.source.tolist() == [0, 5, 6, 7, 8, 9, 100, 10, 11, 2]
    assert ex.target.tolist() == [0, 5, 6, 8, 2]
    # ratio 0.3 of 4 sentences: ceil(1.2) = 2; ROUGE-1 F1 against the rest: 0.4, 0.2, 0.6, 0 -> the third and the
    # first, in document order in the target.
    ex = noising.GapSentences(ratio=0.3)(doc, noising.sample_rng(0, 0, 0), CTX)
    assert ex.source.tolist() == [0, 100, 8, 9, 100, 10, 11, 2]
    assert ex.target.tolist() == [0, 5, 6, 7, 5, 6, 8, 2]
    full = noising.GapSentences(ratio=0.3, target="document")(doc, noising.sample_rng(0, 0, 0), CTX)
    assert full.source.tolist() == ex.source.tolist() and full.target.tolist() == doc.tokens.tolist()


def test_rouge1_f1_counts_repeated_words():
    from collections import Counter

    from noising.gap_sentences import rouge1_f1, sentence_scores

    assert rouge1_f1(Counter("aab"), Counter("ab")) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert rouge1_f1(Counter("aa"), Counter("a")) == pytest.approx(2 * 0.5 * 1 / 1.5)  # "Orig": repeats kept
    doc = Document.from_lists([0, 5, 6, 7, 8, 9, 5, 6, 8, 10, 11, 2], sentence_starts=[1, 4, 6, 9])
    # {5 6 7} vs {8 9 5 6 8 10 11}: overlap 2, P 2/3, R 2/7 -> 0.4; {8 9}: 1 of 2 and of 8 -> 0.2;
    # {5 6 8}: 3 of 3 and of 7 -> 0.6; {10 11}: 0.
    assert sentence_scores(doc).round(4).tolist() == [0.4, 0.2, 0.6, 0.0]


def test_ul2_announces_its_mode_and_each_mode_makes_its_pair():
    objective = noising.UL2Mixture()
    seen = set()
    for i, doc in enumerate(_docs(300)):
        ex = objective(doc, noising.sample_rng(0, 0, i), CTX)
        mode = CTX.mode_ids.index(int(ex.source[0]))
        seen.add(mode)
        assert ex.target[0] == 0 and not np.isin(ex.target, CTX.mode_ids).any()
        if mode == 1:  # S: a prefix and the rest
            assert ex.source[1:-1].tolist() + ex.target[1:-1].tolist() == doc.tokens[1:-1].tolist()
        else:  # R, X: spans behind sentinels
            assert fill_spans(ex.source, ex.target) == doc.tokens[1:-1].tolist()
    assert seen == {0, 1, 2}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: noising.T5SpanCorruption(ratio=1.5), r"T5SpanCorruption.ratio=1.5: must be a number in \[0, 1\]"),
        (lambda: noising.T5SpanCorruption(mean_span=0), r"T5SpanCorruption.mean_span=0: must be a number > 0"),
        (lambda: noising.GapSentences(target="all"), r"GapSentences.target='all': must be one of"),
        (lambda: noising.UL2Mixture(weights=(1, 2)), r"UL2Mixture.weights=\(1, 2\): must be three numbers >= 0"),
        (lambda: noising.UL2Mixture(weights=(0, 0, 0)), r"UL2Mixture.weights=\(0, 0, 0\)"),
        (lambda: noising.UL2Mixture(x_ratio=-1), r"UL2Mixture.x_ratio=-1"),
    ],
)
def test_parameters_are_validated_naming_class_and_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_objectives_without_their_tokens_say_so():
    bare = noising.NoiseContext(mask_id=99, vocab_size=100)
    doc = Document.from_lists([0, 5, 6, 7, 8, 2])
    for objective, what in [
        (noising.T5SpanCorruption(), "sentinel tokens"),
        (noising.UL2Mixture(), "sentinel tokens"),
        (noising.GapSentences(), "<mask_sentence>"),
    ]:
        with pytest.raises(ValueError, match=what):
            objective(doc, noising.sample_rng(0, 0, 0), bare)


def test_random_tokens_never_draw_an_objective_token():
    draws = CTX.random_tokens(np.random.default_rng(0), 200_000)
    assert set(np.unique(draws).tolist()) == set(range(124)) - set(CTX.special_ids)


# -- the pipeline ---------------------------------------------------------------------------------------------------


def test_an_objective_comes_last_and_the_noises_before_it_corrupt_what_it_sees():
    from bart_pretrain.data.noise_config import load_noise

    with pytest.raises(TypeError, match="must come last"):
        noising.Pipeline([noising.PrefixLM(), noising.TokenDeletion()])
    pipe = load_noise(
        [{"class_path": "noising.SentencePermutation", "init_args": {"ratio": 1.0}}, {"class_path": "noising.PrefixLM"}]
    )
    assert pipe.objective == noising.PrefixLM() and pipe.noises == [
        noising.SentencePermutation(ratio=1.0),
        pipe.objective,
    ]
    assert pipe.trusted == (True, True) and pipe.objective_trusted and pipe.plugins == ()
    with pytest.raises(TypeError, match=r"call \.example"):
        pipe(Document.from_lists([0, 5, 6, 2]), noising.sample_rng(0, 0, 0), CTX)
    doc = Document.from_lists([0, 5, 6, 7, 8, 9, 10, 2], sentence_starts=[1, 3, 5])
    for i in range(20):
        rng = noising.sample_rng(0, 0, i)
        permuted = noising.SentencePermutation(ratio=1.0)(doc, rng, CTX)
        expected = noising.PrefixLM()(permuted, rng, CTX)
        got = pipe.example(doc, noising.sample_rng(0, 0, i), CTX)
        assert np.array_equal(got.source, expected.source) and np.array_equal(got.target, expected.target)


def test_without_an_objective_the_example_is_the_noised_document_and_the_original_bit_for_bit():
    from bart_pretrain.data.noise_config import load_noise

    pipe = load_noise("configs/noise/bart_large.yaml")
    scheduled = ScheduledPipeline(pipe, NoiseSchedule(steps=10, start=0.0))
    mixed = ScheduledPipeline(pipe, NoiseSchedule(steps=10, start=0.0, mode="mix"))
    rng = np.random.default_rng(3)
    for i, doc in enumerate(random_document(rng, noising.NoiseContext(mask_id=99, vocab_size=100)) for _ in range(50)):
        ex = pipe.example(doc, noising.sample_rng(5, 1, i), CTX)
        assert np.array_equal(ex.source, pipe(doc, noising.sample_rng(5, 1, i), CTX).tokens)
        assert ex.target is doc.tokens
        for sched in (scheduled, mixed):
            old = sched(doc, noising.sample_rng(5, 1, i), CTX, 4.0).tokens
            assert np.array_equal(sched.example(doc, noising.sample_rng(5, 1, i), CTX, 4.0).source, old)


def test_a_schedule_mixes_identity_pairs_into_an_objective_and_refuses_to_scale_it():
    pipe = noising.Pipeline([noising.T5SpanCorruption()])
    with pytest.raises(ValueError, match="mode='ratio'.*T5SpanCorruption.*use mode 'mix'"):
        ScheduledPipeline(pipe, NoiseSchedule(steps=10, start=0.0))
    mixed = ScheduledPipeline(pipe, NoiseSchedule(steps=100, start=0.0, mode="mix"))
    doc = Document.from_lists([0, *range(10, 40), 2])
    identity = 0
    for i in range(2000):
        ex = mixed.example(doc, noising.sample_rng(0, 0, i), CTX, 25.0)  # strength 0.25
        same = np.array_equal(ex.source, doc.tokens) and np.array_equal(ex.target, doc.tokens)
        identity += same
        assert same or np.isin(ex.target, CTX.sentinel_ids).any()
    assert 0.72 <= identity / 2000 <= 0.78  # 75% identity pairs; 4 sigma = 0.039


def test_the_built_in_objectives_are_named_by_import_path_and_their_former_short_names_are_refused():
    from bart_pretrain.data.noise_config import load_noise

    objectives = [c for c in noising.BUILTINS if issubclass(c, Objective)]
    assert objectives == [noising.T5SpanCorruption, noising.GapSentences, noising.UL2Mixture, noising.PrefixLM]
    for cls, former in zip(objectives, ("t5_spans", "gap_sentences", "ul2", "prefix_lm"), strict=True):
        (objective,) = load_noise([{"class_path": f"noising.{cls.__name__}"}]).noises
        assert type(objective) is cls and load_noise([{"class_path": cls.__name__}]).objective == objective
        with pytest.raises(ValueError, match=f"{former} is the former short name of noising.{cls.__name__}"):
            load_noise([{"class_path": former}])


# -- plug-in objectives: checked on every call and at start-up ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reverse(Objective):
    """A well-behaved plug-in: the target is the content reversed."""

    def __call__(self, doc, rng, ctx):
        t = doc.tokens
        return Example(t.copy(), np.concatenate(([t[0]], t[-2:0:-1], [t[-1]])))


@dataclasses.dataclass(frozen=True)
class Broken(Objective):
    how: str = "pad"

    def __call__(self, doc, rng, ctx):
        t = doc.tokens
        if self.how == "pad":
            return Example(t.copy(), np.concatenate(([t[0]], [ctx.pad_id], t[1:])))
        if self.how == "mode_in_target":
            return Example(t.copy(), np.concatenate(([t[0]], [ctx.mode_ids[0]], t[1:])))
        if self.how == "long":
            return Example(t.copy(), np.concatenate(([t[0]], np.full(ctx.max_length, 5), t[1:])))
        if self.how == "document":
            return doc
        if self.how == "global":
            return Example(t.copy(), t[[0, -1]] if random.random() < 2 else t)
        if self.how == "clock":
            return Example(t.copy(), t[[0, -1]] if np.random.default_rng().random() < 0.5 else t.copy())
        if self.how == "mutate":
            doc.tokens[1] = 5
        return Example(t.copy(), t.copy())


def test_a_good_plug_in_objective_passes_both_checks():
    check_objective(Reverse())
    pipe = noising.Pipeline([Reverse()])
    assert pipe.plugins == (f"{__name__}.Reverse",)
    check_plugins(pipe, CTX)


@pytest.mark.parametrize(
    "how, rule",
    [
        ("pad", "put 1 special id 1 inside its target.*add only <mask>"),
        ("mode_in_target", "special id 101 inside its target"),
        ("long", "past max_length"),
        ("document", "returned a Document, not a noising.Example"),
        ("global", "drew from Python's global `random`"),
        ("mutate", "modified its input document"),
    ],
)
def test_a_plug_in_objective_breaking_a_rule_is_named_on_the_call(how, rule):
    doc = Document.from_lists([0, 5, 6, 7, 2])
    with pytest.raises(PluginContractError, match=f"noise plug-in {__name__}.Broken .*{rule}"):
        checked_objective_call(Broken(how), doc, noising.sample_rng(0, 0, 0), CTX)
    with pytest.raises(AssertionError):
        check_objective(Broken(how))


def test_a_plug_in_objective_with_its_own_randomness_is_refused_at_start_up():
    with pytest.raises(PluginContractError, match="two different outputs"):
        check_plugins(noising.Pipeline([Broken("clock")]), CTX, seeds=range(40))


def test_a_built_in_noise_is_not_an_objective_and_check_objective_says_so():
    with pytest.raises(AssertionError, match="not a noising.Example"):
        check_objective(noising.TokenDeletion())  # type: ignore[arg-type]


# -- the tokenizer's objective tokens -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok():
    from bart_pretrain.tokenizer import train_tokenizer

    texts = ["the kernel module loads a driver. the user runs a tool."] * 20
    return train_tokenizer(texts, vocab_size=300)


def test_objective_tokens_follow_mask_and_move_no_id(tok):
    extended = tok.with_objective_tokens(8)
    assert extended.vocab_size == tok.vocab_size + 12
    m = tok.mask_id
    assert (extended.mask_id, extended.mask_sentence_id, extended.mode_ids) == (m, m + 1, (m + 2, m + 3, m + 4))
    assert extended.sentinel_ids == tuple(range(m + 5, m + 13))
    assert [extended.backend.id_to_token(i) for i in (m + 1, m + 2, m + 4, m + 5, m + 12)] == [
        "<mask_sentence>", "[R]", "[X]", "<extra_id_0>", "<extra_id_7>",
    ]  # fmt: skip
    vocab = tok.backend.get_vocab()
    assert all(extended.backend.token_to_id(t) == i for t, i in vocab.items())
    text = "the <extra_id_0> [R] kernel <mask_sentence>"  # literal text stays text
    assert extended.encode(text) == tok.encode(text)
    assert extended.with_objective_tokens(8) is extended
    assert extended.with_objective_tokens(10).sentinel_ids == tuple(range(m + 5, m + 15))
    from bart_pretrain.tokenizer import Tokenizer

    again = Tokenizer.from_str(extended.to_str())
    assert again.sentinel_ids == extended.sentinel_ids and again.fingerprint() == extended.fingerprint()
    ctx = extended.noise_context(64)
    assert (ctx.mask_sentence_id, ctx.mode_ids, ctx.sentinel_ids) == (
        m + 1,
        (m + 2, m + 3, m + 4),
        extended.sentinel_ids,
    )
    assert tok.noise_context(64).special_ids == (0, 1, 2, 3, m)
    assert not extended.word_start_table()[m:].any()
    assert extended.decode_with_objective_tokens([0, m + 5, *tok.encode(" kernel"), m + 6, 2]) == (
        "<extra_id_0> kernel<extra_id_1>"
    )


def test_train_tokenizer_with_sentinels_and_a_bad_layout_is_refused(tok):
    from bart_pretrain.tokenizer import Tokenizer, train_tokenizer

    texts = ["the kernel module loads a driver. the user runs a tool."] * 20
    trained = train_tokenizer(texts, vocab_size=300, sentinels=4)
    assert trained.to_str() == tok.with_objective_tokens(4).to_str()
    with pytest.raises(ValueError, match="sentinels=1"):
        train_tokenizer(texts, vocab_size=300, sentinels=1)
    backend = Tokenizer.from_str(tok.to_str()).backend
    backend.add_special_tokens(["<other>", "<mask_sentence>"])
    with pytest.raises(ValueError, match="must follow <mask>"):
        Tokenizer(backend)
