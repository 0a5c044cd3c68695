"""The defining statistics of the objectives over 1,000 documents of 32-512 tokens (the noise benchmark's corpus): T5's
15% in spans of mean 3, PEGASUS's 30% of sentences by ROUGE-1, UL2's mode mixture and each mode's rate and span
length, the prefix LM's uniform cut. Bounds are stated beside each check (about 4 standard deviations)."""

from __future__ import annotations

import math

import numpy as np

import noising
from bart_pretrain.bench.noise import corpus
from noising.testing import OBJECTIVE_CONTEXT

CTX = noising.NoiseContext(
    mask_id=2**40 - 1, vocab_size=2**40 + 104, max_length=1024, mask_sentence_id=2**40,
    mode_ids=(2**40 + 1, 2**40 + 2, 2**40 + 3), sentinel_ids=tuple(range(2**40 + 4, 2**40 + 104)),
)  # fmt: skip
SENTINELS = np.asarray(CTX.sentinel_ids)


def documents(n: int, seed: int) -> list[noising.Document]:
    """The benchmark's 512-token documents, each cut to a uniform 32-510 content tokens (sentences kept whole where
    they fit), so that rates are averaged over many lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for doc in corpus(n, seed=seed):
        k = int(rng.integers(32, 511))
        tokens = np.concatenate((doc.tokens[: k + 1], doc.tokens[-1:]))
        ws = np.concatenate((doc.word_starts[: k + 1], [False]))
        out.append(noising.Document(tokens, ws, doc.sentence_starts[doc.sentence_starts < k + 1]))
    return out


def span_lengths(target: np.ndarray) -> list[int]:
    """Lengths of the spans of a span-corruption target (tokens between consecutive sentinels)."""
    marks = np.flatnonzero(np.isin(target, SENTINELS))
    return np.diff(marks).astype(int).__sub__(1).tolist()


def test_t5_spans_drop_15_percent_in_spans_of_mean_3():
    docs = documents(1000, seed=7)
    objective = noising.T5SpanCorruption()
    dropped, lengths = [], []
    for i, doc in enumerate(docs):
        ex = objective(doc, noising.sample_rng(0, 0, i), CTX)
        content = len(doc) - 2
        spans = span_lengths(ex.target)
        assert sum(spans) == round(0.15 * content)  # the exact count, T5's rounding
        assert len(spans) == round(round(0.15 * content) / 3)
        dropped.append(sum(spans) / content)
        lengths += spans
    share, mean = float(np.mean(dropped)), float(np.mean(lengths))
    print(f"\nt5_spans over 1000 x 32-512 tokens: {share:.2%} dropped, mean span {mean:.3f}, longest {max(lengths)}")
    assert 0.149 <= share <= 0.151  # rounding only: round(0.15 n) / n, n of 32-510 tokens
    assert 2.9 <= mean <= 3.1  # round(d / 3) spans of d tokens
    # A uniform composition of d tokens into k spans: P(length 1) = (k - 1) / (d - 1) ~ 1/3 for mean 3.
    assert 0.30 <= np.mean(np.asarray(lengths) == 1) <= 0.37


def test_gap_sentences_mask_30_percent_of_the_sentences_with_the_best_rouge():
    from noising.gap_sentences import sentence_bounds, sentence_scores

    docs = documents(300, seed=8)
    objective = noising.GapSentences()
    masked_share, exact_share, sentences, chosen_score, other_score = [], [], [], [], []
    for i, doc in enumerate(docs):
        ex = objective(doc, noising.sample_rng(0, 0, i), CTX)
        bounds = sentence_bounds(doc)
        n_masked = int((ex.source == CTX.mask_sentence_id).sum())
        assert n_masked == math.ceil(0.3 * len(bounds) - 1e-9)
        scores = sentence_scores(doc)
        source = ex.source.tolist()
        chosen = [k for k, (a, b) in enumerate(bounds) if doc.tokens[a:b].tolist() not in _windows(source, b - a)]
        assert len(chosen) == n_masked
        assert min(scores[chosen]) >= np.max(np.delete(scores, chosen), initial=-1.0)  # the best ones, independently
        target = np.concatenate([doc.tokens[a:b] for k, (a, b) in enumerate(bounds) if k in chosen])
        assert ex.target[1:-1].tolist() == target.tolist()  # in document order
        masked_share.append(n_masked / len(bounds))
        exact_share.append(math.ceil(0.3 * len(bounds) - 1e-9) / len(bounds))
        sentences.append(len(bounds))
        chosen_score += scores[chosen].tolist()
        other_score += np.delete(scores, chosen).tolist()
    print(
        f"\ngap_sentences over 300 x 32-512 tokens: {np.mean(masked_share):.1%} of sentences masked; ROUGE-1 F1 "
        f"{np.mean(chosen_score):.3f} chosen vs {np.mean(other_score):.3f} others"
    )
    # ceil(0.3 n) / n of n sentences: above 30% for short documents (2 of 4 sentences), 30-40% from 10 sentences on.
    assert np.mean(masked_share) == np.mean(exact_share) and min(masked_share) >= 0.3
    assert all(0.3 <= m <= 0.4 for m, n in zip(masked_share, sentences, strict=True) if n >= 10)


def _windows(seq: list[int], n: int) -> list[list[int]]:
    return [seq[j : j + n] for j in range(len(seq) - n + 1)]


def test_ul2_draws_its_modes_by_weight_and_each_mode_has_its_rate():
    docs = documents(1000, seed=9)
    objective = noising.UL2Mixture()
    counts = np.zeros(3)
    r_share, r_lengths, x_long, x_high = [], [], [], []
    for rep in range(3):
        for i, doc in enumerate(docs):
            ex = objective(doc, noising.sample_rng(rep, 0, i), CTX)
            mode = CTX.mode_ids.index(int(ex.source[0]))
            counts[mode] += 1
            content = len(doc) - 2
            if mode == 1:
                assert len(ex.source) + len(ex.target) == len(doc) + 2
                continue
            spans = span_lengths(ex.target)
            share = sum(spans) / content
            if mode == 0:
                r_share.append(share)
                r_lengths += spans
            elif share < 0.3:  # X's two denoisers drop 15% or 50%
                x_long.append((share, np.mean(spans)))
            else:
                x_high.append((share, np.mean(spans)))
    freq = counts / counts.sum()
    print(f"\nul2 over 3 x 1000 documents: R/S/X {freq.round(4).tolist()}, X long {len(x_long)} / high {len(x_high)}")
    # 2/7, 1/7, 4/7; 3000 draws: 4 sigma <= 0.037
    assert np.all(np.abs(freq - np.array([2, 1, 4]) / 7) <= 0.037)
    assert 0.149 <= np.mean(r_share) <= 0.151 and 2.9 <= np.mean(r_lengths) <= 3.1
    long_share, long_mean = np.mean(x_long, axis=0)
    high_share, high_mean = np.mean(x_high, axis=0)
    assert 0.149 <= long_share <= 0.151 and 25 <= long_mean <= 45  # round(d / 32) spans (at least 1) of d tokens
    assert 0.498 <= high_share <= 0.502 and 2.9 <= high_mean <= 3.1
    assert abs(len(x_long) / (len(x_long) + len(x_high)) - 0.5) <= 0.05  # 1,700 draws: 4 sigma = 0.049


def test_prefix_lm_cuts_uniformly():
    doc = noising.Document.from_lists([0, *range(10, 21), 2])  # 11 content tokens: 10 cut points
    cuts = np.array([
        len(noising.PrefixLM()(doc, noising.sample_rng(0, 0, i), OBJECTIVE_CONTEXT).source) - 2 for i in range(20_000)
    ])  # fmt: skip
    freq = np.bincount(cuts, minlength=11)[1:] / len(cuts)
    assert cuts.min() == 1 and cuts.max() == 10
    assert np.all(np.abs(freq - 0.1) <= 0.0085)  # 20,000 draws: 4 sigma = 0.0085
