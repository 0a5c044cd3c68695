"""Statistics of the bart_large recipe over 1,000 documents of 512 tokens: exact budget, coverage, length ratio.

fairseq's overlapping spans cover ~27% of interior tokens for a 30% budget and give a source/target length
ratio of ~0.80; our spans never overlap, so coverage is the budget itself (~30% of tokens, since whole words
are covered) and the ratio is a little lower (~0.77).
"""

from __future__ import annotations

import math

import numpy as np

import noising
from bart_pretrain.bench.noise import corpus
from bart_pretrain.data.noise_config import load_noise

# Surrogate ids: token i of every document is id 5 + i, so the output tells which input tokens survived.
# A vocabulary of 2**40 makes a random replacement colliding with a surrogate practically impossible.
CTX = noising.NoiseContext(mask_id=2**40 - 1, vocab_size=2**40, max_length=1024)
COVERED_BOUNDS = (0.285, 0.315)
LENGTH_RATIO_BOUNDS = (0.74, 0.79)


def test_bart_large_recipe_has_exact_budget_and_stated_coverage_and_length_ratio():
    pipe = load_noise("configs/noise/bart_large.yaml")
    docs = corpus(1000, seed=7)
    covered_share, length_ratio = [], []
    for i, doc in enumerate(docs):
        n = len(doc)
        doc = doc.replace(tokens=np.concatenate(([0], np.arange(5, 5 + n - 2), [2])))
        out = pipe(doc, noising.sample_rng(0, 0, i), CTX).tokens
        survived = np.zeros(n - 2, dtype=bool)
        survived[out[(out >= 5) & (out < 5 + n - 2)] - 5] = True
        covered = ~survived
        word_of = np.cumsum(doc.word_starts[1:-1]) - 1
        n_words = word_of[-1] + 1
        covered_tokens_per_word = np.bincount(word_of, weights=covered, minlength=n_words)
        word_len = np.bincount(word_of, minlength=n_words)
        # whole words only: every word is either fully covered or untouched ...
        assert np.all((covered_tokens_per_word == 0) | (covered_tokens_per_word == word_len))
        # ... and exactly ceil(0.3 * words) of them are covered
        assert int((covered_tokens_per_word == word_len).sum()) == math.ceil(0.3 * n_words - 1e-9)
        covered_share.append(covered.mean())
        length_ratio.append(len(out) / n)
    share, ratio = float(np.mean(covered_share)), float(np.mean(length_ratio))
    print(f"\nbart_large over 1000 x 512 tokens: {share:.1%} of interior tokens covered, source/target {ratio:.3f}")
    assert COVERED_BOUNDS[0] <= share <= COVERED_BOUNDS[1]
    assert LENGTH_RATIO_BOUNDS[0] <= ratio <= LENGTH_RATIO_BOUNDS[1]


def test_span_lengths_follow_the_truncated_poisson():
    from noising.text_infilling import poisson_cdf, sample_span_lengths

    rng = np.random.default_rng(0)
    cdf = poisson_cdf(3.5)
    lengths = np.concatenate([sample_span_lengths(rng, cdf, 3.5, 10_000)[:-1] for _ in range(10)])
    assert abs(lengths.mean() - 3.5) < 0.05
    assert abs((lengths == 0).mean() - math.exp(-3.5)) < 0.005  # 0-length spans: ~3% of spans
    assert lengths.max() <= len(cdf) - 1
