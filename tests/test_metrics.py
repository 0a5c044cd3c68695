"""ROUGE and lead-1 against values worked out by hand."""

import pytest

from bart_pretrain.evaluate import markdown_table
from bart_pretrain.metrics import lead_sentence, rouge


def test_rouge_of_identical_strings_is_100():
    assert rouge(["the cat sat"], ["the cat sat"]) == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})


def test_rouge_of_a_prefix_prediction_matches_hand_computed_f1():
    # prediction: 3 unigrams, all in the 6-unigram reference -> P=1, R=1/2, F=2/3.
    # bigrams: "the cat", "cat sat" both in the reference's 5 bigrams -> P=1, R=2/5, F=4/7.
    # LCS = 3 -> same as ROUGE-1.
    scores = rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(200 / 3)
    assert scores["rouge2"] == pytest.approx(400 / 7)
    assert scores["rougeL"] == pytest.approx(200 / 3)


def test_rouge_l_counts_in_order_matches_only():
    # unigrams all match (R1 = 100) but the longest common subsequence of "a b c" and "c b a" is 1 token.
    scores = rouge(["c b a"], ["a b c"])
    assert scores["rouge1"] == pytest.approx(100.0)
    assert scores["rouge2"] == pytest.approx(0.0)
    assert scores["rougeL"] == pytest.approx(100 / 3)


def test_rouge_stems_words_and_ignores_case():
    assert rouge(["Cats Running"], ["cat run"])["rouge1"] == pytest.approx(100.0)


def test_rouge_averages_over_pairs():
    scores = rouge(["the cat sat", "dog"], ["the cat sat", "bird"])
    assert scores["rouge1"] == pytest.approx(50.0)


def test_rouge_rejects_misaligned_lists():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])


def test_lead_sentence_is_the_first_sentence():
    doc = "This package provides a parser. It also ships a command-line tool. See the docs."
    assert lead_sentence(doc) == "This package provides a parser."
    assert lead_sentence("") == ""


def test_lead_baseline_scores_the_first_sentence():
    from bart_pretrain.evaluate import lead_baseline

    docs = ["A fast JSON parser. It is written in C.", "Tools for images. Many formats are supported."]
    refs = ["fast JSON parser", "tools for images"]
    # pair 1: 4 prediction unigrams (a fast json parser), 3 match -> P=3/4 R=1 F=6/7; pair 2: P=1 R=1 F=1.
    assert lead_baseline(docs, refs)["rouge1"] == pytest.approx(100 * (6 / 7 + 1) / 2)


def test_markdown_table_has_a_row_per_system():
    table = markdown_table({"lead-1": {"rouge1": 32.61, "rouge2": 15.1, "rougeL": 28.0}})
    assert table.splitlines()[0] == "| system | ROUGE-1 | ROUGE-2 | ROUGE-L |"
    assert "| lead-1 | 32.61 | 15.10 | 28.00 |" in table
