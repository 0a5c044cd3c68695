"""Task metrics and baselines, chosen by name in config: ROUGE-1/2/L (Lin, 2004; Google's `rouge-score` with Porter
stemming, as in the BART paper's tables), sacreBLEU's corpus BLEU and chrF, exact match; baselines lead-K (the first K
sentences of the source, from our sentence splitter), copy (the source itself) and none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Literal

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
MetricName = Literal["rouge", "bleu", "chrf", "exact_match"]
METRIC_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "rouge": (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")),
    "bleu": (("bleu", "BLEU"),),
    "chrf": (("chrf", "chrF"),),
    "exact_match": (("exact_match", "exact match %"),),
}
"""Each metric's keys in a result and their column names in a table."""
BASELINES = "lead-K (the first K sentences of the source, K >= 1), copy (the source itself) or none"


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean F1 x 100 of ROUGE-1, ROUGE-2 and ROUGE-L over aligned prediction/reference pairs."""
    check_aligned(predictions, references)
    scorer = _scorer()
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(predictions) for key, total in totals.items()}


def check_aligned(predictions: Sequence[str], references: Sequence[str]) -> None:
    """As many predictions as references, and at least one."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references; must be equal")
    if not predictions:
        raise ValueError("no predictions to score (empty list)")


def score(metrics: Sequence[str], predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The ``metrics`` (names of :data:`METRIC_COLUMNS`) of aligned predictions and references, each 0-100: ROUGE as
    mean F1, BLEU and chrF (character 6-grams, beta 2) as sacrebleu's corpus scores (13a tokenisation), exact match
    as the share of predictions equal to their reference (surrounding whitespace ignored)."""
    predictions, references = list(predictions), list(references)
    check_aligned(predictions, references)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "rouge":
            out.update(rouge(predictions, references))
        elif name in ("bleu", "chrf"):
            import sacrebleu

            scorer = sacrebleu.corpus_bleu if name == "bleu" else sacrebleu.corpus_chrf
            out[name] = float(scorer(predictions, [references]).score)
        elif name == "exact_match":
            same = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
            out[name] = 100.0 * same / len(predictions)
        else:
            raise ValueError(f"unknown metric {name!r}; the metrics: {', '.join(METRIC_COLUMNS)}")
    return out


def check_metrics(metrics: Sequence[str], flag: str = "--model.metrics") -> None:
    """One line naming ``flag`` when ``metrics`` is empty, repeats a name or holds an unknown one."""
    unknown = [m for m in metrics if m not in METRIC_COLUMNS]
    if not metrics or unknown or len(set(metrics)) != len(metrics):
        raise ValueError(f"{flag}={list(metrics)}: must be one or more of {', '.join(METRIC_COLUMNS)}, each once")


def lead(document: str, k: int = 1) -> str:
    """The first ``k`` sentences of ``document`` (empty string for an empty document): the lead-K baseline."""
    from bart_pretrain.data.sentences import split_sentences

    return " ".join(split_sentences(document)[:k])


_LEAD = re.compile(r"lead-([1-9][0-9]*)")


def check_baseline(baseline: str, flag: str = "--model.baseline") -> None:
    """One line naming ``flag`` when ``baseline`` is none of :data:`BASELINES`."""
    if baseline not in ("copy", "none") and not _LEAD.fullmatch(baseline):
        raise ValueError(f"{flag}={baseline!r}: must be {BASELINES}")


def baseline_predictions(baseline: str, sources: Sequence[str]) -> list[str] | None:
    """What the ``baseline`` predicts for each source (None for ``none``)."""
    check_baseline(baseline)
    if baseline == "none":
        return None
    if baseline == "copy":
        return [" ".join(s.split()) for s in sources]
    k = int(_LEAD.fullmatch(baseline).group(1))
    return [lead(s, k) for s in sources]
