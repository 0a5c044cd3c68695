"""Noising throughput: input tokens/s on one core for each shipped recipe, on 512-token documents.

Documents mimic real BPE text (a word every ~1.35 tokens, a sentence every ~25 tokens); each sample draws
its own generator with ``noising.sample_rng`` as the data loader does, and that cost is included. Best of N
repeats (the machine may be shared). Goal (issue 3): >= 2M tokens/s for bart_large.
"""

from __future__ import annotations

import time

import numpy as np

import noising
from bart_pretrain.noise_config import RECIPE_DIR, load_noise

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


def throughput(pipe, docs: list[noising.Document], repeats: int) -> float:
    """Best-of-``repeats`` input tokens/s over ``docs``, each sample with its own generator."""
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        for i, doc in enumerate(docs):
            pipe(doc, noising.sample_rng(0, r, i), CONTEXT)
        best = min(best, time.perf_counter() - start)
    return sum(len(d) for d in docs) / best


def main(quick: bool = False) -> None:
    docs = corpus(200 if quick else 2000)
    repeats = 2 if quick else 7
    print(f"{len(docs)} documents x {DOC_LEN} tokens, best of {repeats}, one process (numpy, single-threaded)\n")
    print("| recipe | input tokens/s (1 core) | us / document |")
    print("|---|---:|---:|")
    print(f"| (sample_rng only) | {throughput(noising.Pipeline([]), docs, repeats) / 1e6:.2f}M | |")
    for name in RECIPES:
        rate = throughput(pipeline(name), docs, repeats)
        goal = " (goal >= 2M)" if name == "bart_large" else ""
        print(f"| {name}{goal} | {rate / 1e6:.2f}M | {DOC_LEN / rate * 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
