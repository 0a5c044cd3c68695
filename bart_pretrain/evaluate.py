"""Batched beam-search summarization and test-split evaluation: predictions.jsonl, metrics.json, a markdown table.

ROUGE-1/2/L are ``rouge-score`` F1 with stemming (``bart_pretrain.metrics.rouge``), as in the BART paper's
Table 3; the lead-1 baseline takes the first sentence of each document.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from bart_pretrain.generation import GenerationConfig  # defined there, once; importable from here too
from bart_pretrain.io import atomic_write_json, atomic_write_jsonl

BEAM_BATCH_TOKENS = 8192
BEAM_BATCH_TOKENS_HELP = "token budget of one beam-search batch: its documents x their longest source x the beams"


@torch.no_grad()
def summarize_texts(
    model,
    tokenizer,
    documents: list[str],
    generation: GenerationConfig,
    max_source_length: int = 512,
    beam_batch_tokens: int = BEAM_BATCH_TOKENS,
) -> list[str]:
    """Summaries of ``documents`` in their order; batches of similar length hold <= ``beam_batch_tokens`` source
    tokens (times the beam width), sources truncated to ``max_source_length`` tokens with ``<s>``/``</s>``."""
    from bart_pretrain.data.batching import pad
    from bart_pretrain.data.summarization_pairs import encode_text

    if not documents:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    encoded = encode_text(tokenizer, documents, max_source_length)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    out: list[str] = [""] * len(documents)
    start = 0
    while start < len(order):
        longest = len(encoded[order[start]])
        size = max(1, beam_batch_tokens // (longest * generation.num_beams))
        idx = order[start : start + size]
        input_ids, attention_mask = pad([encoded[i] for i in idx], tokenizer.pad_id)
        generated = model.generate(input_ids.to(device), attention_mask.to(device), generation)
        for i, ids in zip(idx, generated.tolist(), strict=True):
            out[i] = tokenizer.decode(ids, skip_special_tokens=True).strip()
        start += size
    model.train(was_training)
    return out


def lead_baseline(documents: list[str], references: list[str]) -> dict[str, float]:
    from bart_pretrain.metrics import lead_sentence, rouge

    return rouge([lead_sentence(d) for d in documents], references)


def evaluate_pairs(
    model,
    tokenizer,
    documents: list[str],
    references: list[str],
    generation: GenerationConfig,
    out_dir: str | Path | None = None,
    max_source_length: int = 512,
    beam_batch_tokens: int = BEAM_BATCH_TOKENS,
    ids: list | None = None,
) -> dict:
    """Summarize, score with ROUGE; with ``out_dir`` write ``predictions.jsonl`` and ``metrics.json`` there."""
    from bart_pretrain.metrics import rouge

    t0 = time.perf_counter()
    predictions = summarize_texts(model, tokenizer, documents, generation, max_source_length, beam_batch_tokens)
    seconds = time.perf_counter() - t0
    metrics = {
        **rouge(predictions, references),
        "n": len(documents),
        "generation_seconds": round(seconds, 2),
        "generation": asdict(generation),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        ids = ids if ids is not None else list(range(len(documents)))
        atomic_write_jsonl(
            out_dir / "predictions.jsonl",
            ({"id": i, "prediction": p, "reference": r} for i, p, r in zip(ids, predictions, references, strict=True)),
        )
        atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics


def markdown_table(rows: dict[str, dict]) -> str:
    """A markdown table of ROUGE-1/2/L per named system (``rows``: name -> metrics with rouge1/rouge2/rougeL)."""
    lines = ["| system | ROUGE-1 | ROUGE-2 | ROUGE-L |", "|---|---:|---:|---:|"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m['rouge1']:.2f} | {m['rouge2']:.2f} | {m['rougeL']:.2f} |")
    return "\n".join(lines) + "\n"
