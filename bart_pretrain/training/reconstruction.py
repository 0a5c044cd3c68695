"""Does the denoiser beat copying its input? Reconstructions (beam search, or greedy) of a fixed set of validation
documents (the one generation loop, ``bart_pretrain.evaluate.generate_ids``) scored against the originals with
sacrebleu's chrF and BLEU (``bart_pretrain.metrics``), beside the same scores of the COPY BASELINE:
the corrupted source itself with its special tokens (masks) dropped. A model that ignores its source scores far
below the baseline; one that copies and also repairs (fills spans, restores order) scores above it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bart_pretrain.evaluate import generate_ids
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.metrics import score

PROBE_METRICS = ("chrf", "bleu")


def repeats_itself(text: str, original: str, n: int = 6) -> bool:
    """Whether ``text`` repeats a word ``n``-gram, or a whole sentence of any length, more often than ``original``
    does (the run-on of a decoder that starts a sentence again)."""

    def counts(t: str) -> tuple[Counter, Counter]:
        words = t.split()
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        sentences = Counter(s.strip() for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 2)
        return grams, sentences

    (grams, sentences), (grams_o, sentences_o) = counts(text), counts(original)
    return any(c > max(1, grams_o[g]) for g, c in grams.items()) or any(
        c > max(1, sentences_o[x]) for x, c in sentences.items()
    )


def run_on_shares(outputs: Sequence[str], originals: Sequence[str], longer_by: float = 0.1) -> dict[str, float]:
    """Share of ``outputs`` that repeat themselves (:func:`repeats_itself`), and share longer than their original by
    more than ``longer_by`` (in characters)."""
    pairs = list(zip(outputs, originals, strict=True))
    n = max(len(pairs), 1)
    return {
        "repeat_share": sum(repeats_itself(o, r) for o, r in pairs) / n,
        "long_share": sum(len(o) > (1 + longer_by) * len(r) for o, r in pairs) / n,
    }


RECONSTRUCTION_BATCH = 16  # documents a batch, shortest first (the probe's numbers depend on the batches)
EXTRA_TOKENS = 16  # a batch may generate this many tokens past its longest source


@dataclass
class ReconstructionProbe:
    """A fixed set of (corrupted source, original) pairs, their copy-baseline scores, and a scorer of a model."""

    sources: list[np.ndarray]
    originals: list[str]
    decode: Callable[..., str]
    num_beams: int
    """Beam width of the model's reconstructions (1: greedy)."""
    no_repeat_ngram_size: int = 0
    """Reconstructions never repeat a token n-gram of this size (0: no ban)."""
    copy_decode: Callable[..., str] | None = None
    """Decodes the copy baseline's sources (None: ``decode``). A recipe ending in an objective scores the source, its
    special tokens dropped, against the objective's target, decoded with the sentinels written out."""
    reference: str = "original"
    """What the outputs are scored against: ``original`` (noises) or ``target`` (an objective's)."""
    copy_texts: list[str] = field(init=False)
    baseline: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        copy = self.copy_decode or self.decode
        self.copy_texts = [copy(s.tolist()) for s in self.sources]  # special ids (<mask>, <s>, </s>) dropped
        self.baseline = score(PROBE_METRICS, self.copy_texts, self.originals)

    @classmethod
    def from_datamodule(
        cls, datamodule, n: int, num_beams: int, no_repeat_ngram_size: int = 0
    ) -> ReconstructionProbe | None:
        """The first ``n`` validation documents, corrupted exactly as validation corrupts them (None: no val set)."""
        docs = getattr(datamodule, "val_docs", None)
        if docs is None or n <= 0:
            return None
        tok = datamodule.tokenizer
        pairs = [datamodule.val_sample(i) for i in range(min(n, len(docs)))]
        if getattr(datamodule.corruptor.noise, "objective", None) is not None:  # (source, the objective's target)
            decode = tok.decode_with_objective_tokens
            targets = [decode(t.tolist()) for _, t in pairs]
            sources = [s for s, _ in pairs]
            return cls(sources, targets, decode, num_beams, no_repeat_ngram_size, tok.decode, "target")
        originals = [tok.decode(t.tolist()) for _, t in pairs]
        return cls([s for s, _ in pairs], originals, tok.decode, num_beams, no_repeat_ngram_size)

    def evaluate(self, model, no_repeat_ngram_size: int | None = None) -> dict:
        """Scores of the model's reconstructions and of the copy baseline, and the texts themselves. The model beats
        the baseline when it scores higher on both chrF and BLEU. ``no_repeat_ngram_size`` overrides the probe's."""
        ban = self.no_repeat_ngram_size if no_repeat_ngram_size is None else no_repeat_ngram_size
        generation = GenerationConfig(num_beams=self.num_beams, no_repeat_ngram_size=ban)  # max_length: per batch
        ids = generate_ids(
            model,
            self.sources,
            generation,
            batch_size=RECONSTRUCTION_BATCH,
            longest_first=False,
            extra_tokens=EXTRA_TOKENS,
        )
        outputs = [self.decode(row) for row in ids]
        scores = score(PROBE_METRICS, outputs, self.originals)
        return {
            "documents": len(self.sources),
            "num_beams": self.num_beams,
            "no_repeat_ngram_size": ban,
            "model": scores,
            "copy_baseline": dict(self.baseline),
            "run_on": run_on_shares(outputs, self.originals),
            "beats_copy_baseline": all(scores[k] > self.baseline[k] for k in ("chrf", "bleu")),
            "reference": self.reference,
            "examples": [
                {"original": o, "corrupted": self.decode(s.tolist(), skip_special_tokens=False), "model": m}
                for o, s, m in zip(self.originals, self.sources, outputs, strict=True)
            ],
        }
