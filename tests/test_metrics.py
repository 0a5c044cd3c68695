"""The task metrics (ROUGE, BLEU, chrF, exact match) and baselines (lead-K, copy, none) against values worked out by
hand, and their one-line errors."""

import pytest

from bart_pretrain.evaluate import markdown_table
from bart_pretrain.metrics import baseline_predictions, check_baseline, check_metrics, lead, rouge, score


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


def test_lead_is_the_first_k_sentences():
    doc = "This package provides a parser. It also ships a command-line tool. See the docs."
    assert lead(doc) == "This package provides a parser."
    assert lead(doc, 2) == "This package provides a parser. It also ships a command-line tool."
    assert lead(doc, 9) == doc
    assert lead("") == ""


def test_lead_baseline_scores_the_first_sentence():
    docs = ["A fast JSON parser. It is written in C.", "Tools for images. Many formats are supported."]
    refs = ["fast JSON parser", "tools for images"]
    # pair 1: 4 prediction unigrams (a fast json parser), 3 match -> P=3/4 R=1 F=6/7; pair 2: P=1 R=1 F=1.
    guesses = baseline_predictions("lead-1", docs)
    assert guesses == ["A fast JSON parser.", "Tools for images."]
    assert score(["rouge"], guesses, refs)["rouge1"] == pytest.approx(100 * (6 / 7 + 1) / 2)


def test_copy_and_none_baselines():
    assert baseline_predictions("copy", ["a  long\n synopsis ", "x"]) == ["a long synopsis", "x"]
    assert baseline_predictions("none", ["a"]) is None
    assert baseline_predictions("lead-2", ["One. Two. Three."]) == ["One. Two."]


@pytest.mark.parametrize("bad", ["lead", "lead-0", "lead-k", "first", "Copy", ""])
def test_an_unknown_baseline_is_one_line_naming_the_flag(bad):
    with pytest.raises(ValueError, match=rf"^--model\.baseline='{bad}': must be lead-K .*, copy .* or none$"):
        check_baseline(bad)


def test_exact_match_counts_equal_strings_ignoring_surrounding_space():
    assert score(["exact_match"], ["gcc", " vim ", "emacs"], ["gcc", "vim", "nano"]) == {"exact_match": 200 / 3}


def test_bleu_and_chrf_are_sacrebleus_corpus_scores():
    import sacrebleu

    hyps, refs = ["the kernel loads the driver", "a shell"], ["the kernel module loads the driver", "a shell"]
    scores = score(["chrf", "bleu"], hyps, refs)
    assert list(scores) == ["chrf", "bleu"]
    assert scores["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
    assert scores["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert score(["chrf", "bleu"], refs, refs) == pytest.approx({"chrf": 100.0, "bleu": 100.0})


@pytest.mark.parametrize("bad", [[], ["rouge", "rouge"], ["meteor"]])
def test_bad_metric_lists_are_one_line_naming_the_flag(bad):
    message = r"^--model\.metrics=.*: must be one or more of rouge, bleu, chrf, exact_match, each once$"
    with pytest.raises(ValueError, match=message):
        check_metrics(bad)


def test_markdown_table_has_a_row_per_system():
    table = markdown_table({"lead-1": {"rouge1": 32.61, "rouge2": 15.1, "rougeL": 28.0}})
    assert table.splitlines()[0] == "| system | ROUGE-1 | ROUGE-2 | ROUGE-L |"
    assert "| lead-1 | 32.61 | 15.10 | 28.00 |" in table


def test_markdown_table_has_the_columns_of_the_tasks_metrics():
    table = markdown_table({"copy": {"exact_match": 0.0, "chrf": 41.234}}, ["exact_match", "chrf"])
    assert table.splitlines() == ["| system | exact match % | chrF |", "|---|---:|---:|", "| copy | 0.00 | 41.23 |"]
