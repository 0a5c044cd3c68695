"""Summarization metrics: ROUGE-1/2/L (Lin, 2004) via Google's `rouge-score` with Porter stemming, as in the
BART paper's tables, and the lead-1 baseline (the document's first sentence from our sentence splitter)."""

from __future__ import annotations

import functools

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean F1 x 100 of ROUGE-1, ROUGE-2 and ROUGE-L over aligned prediction/reference pairs."""
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"rouge: {len(predictions)} predictions but {len(references)} references; must be equal")
    if not predictions:
        raise ValueError("rouge: no predictions to score (empty list)")
    scorer = _scorer()
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(predictions) for key, total in totals.items()}


def lead_sentence(document: str) -> str:
    """The first sentence of ``document`` (empty string for an empty document): the lead-1 baseline."""
    from bart_pretrain.data.documents import split_sentences

    sentences = split_sentences(document)
    return sentences[0] if sentences else ""
