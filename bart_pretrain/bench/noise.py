"""Noising throughput: input tokens/s on one core for each shipped recipe, on 512-token documents.

Documents mimic real BPE text (a word every ~1.35 tokens, a sentence every ~25 tokens); each sample draws
its own generator with ``noising.sample_rng`` as the data loader does, and that cost is included. Best of
many short slices (the machine may be shared). Goal (issue 3): >= 2M tokens/s for bart_large.
"""

from __future__ import annotations

import time

import numpy as np

import noising
from bart_pretrain.data.noise_config import RECIPE_DIR, load_noise

DOC_LEN = 512
CONTEXT = noising.NoiseContext(mask_id=50264, vocab_size=50265, max_length=1024)
RECIPES = ["bart_large", "text_infilling", "sentence_permutation", "token_masking", "token_deletion",
           "document_rotation", "random_insertion"]  # fmt: skip


def corpus(n_docs: int, seed: int = 0) -> list[noising.Document]:
    """``n_docs`` synthetic documents of DOC_LEN tokens with realistic word and sentence boundaries."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        tokens = np.concatenate(([0], rng.integers(5, CONTEXT.vocab_size - 1, DOC_LEN - 2), [2]))
        ws = np.zeros(DOC_LEN, dtype=bool)
        ws[1:-1] = rng.random(DOC_LEN - 2) < 0.74
        ws[1] = True
        words = np.flatnonzero(ws)
        ss = np.concatenate(([1], words[1:][rng.random(len(words) - 1) < 1 / 18.5]))
        docs.append(noising.Document(tokens.astype(np.int64), ws, ss.astype(np.int64)))
    return docs


def pipeline(name: str) -> noising.Pipeline:
    if name == "random_insertion":  # not a paper ablation, so no shipped recipe: fairseq's --insert 0.1
        return noising.Pipeline([noising.RandomInsertion(ratio=0.1, random_ratio=0.1)])
    return load_noise(RECIPE_DIR / f"{name}.yaml")


def throughput(pipe, docs: list[noising.Document], repeats: int, chunk: int = 100) -> tuple[float, float]:
    """Input tokens/s of the fastest and of the median ``chunk``-document slice over ``repeats`` passes (the best
    of many short slices finds the quiet moments of a shared machine; the median shows how noisy it was).
    Each sample draws its own generator, as a data loader does."""
    per_doc = []
    for r in range(repeats):
        for lo in range(0, len(docs), chunk):
            hi = min(lo + chunk, len(docs))
            start = time.perf_counter()
            for i in range(lo, hi):
                pipe(docs[i], noising.sample_rng(0, r, i), CONTEXT)
            per_doc.append((time.perf_counter() - start) / (hi - lo))
    return DOC_LEN / min(per_doc), DOC_LEN / float(np.median(per_doc))


def main(quick: bool = False) -> None:
    docs = corpus(200 if quick else 2000)
    repeats = 2 if quick else 7
    print(f"{len(docs)} documents x {DOC_LEN} tokens, {repeats} passes in 100-document slices, one process\n")
    print("| recipe | input tokens/s, 1 core (best slice) | median slice | us / document (best) |")
    print("|---|---:|---:|---:|")
    best, median = throughput(noising.Pipeline([]), docs, repeats)
    print(f"| (sample_rng only) | {best / 1e6:.2f}M | {median / 1e6:.2f}M | {DOC_LEN / best * 1e6:.0f} |")
    for name in RECIPES:
        best, median = throughput(pipeline(name), docs, repeats)
        goal = " (goal >= 2M)" if name == "bart_large" else ""
        print(f"| {name}{goal} | {best / 1e6:.2f}M | {median / 1e6:.2f}M | {DOC_LEN / best * 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
