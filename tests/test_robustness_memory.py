"""Memory stays flat: streaming pretraining data (``--data.streaming true``: a JSONL file read through ``datasets``
streaming, tokenized, chunked, bucketed and corrupted buffer by buffer) holds no more memory after 5N documents than
after N, although the documents streamed in between would take several times the allowed growth if anything kept
them.

Measured in a child forked from the test process (tests/forked.py; whatever the parent holds is there from the
start, so it is in both marks and not in their difference) after the first N documents and again after 5N: the RSS
(from /proc), and the live heap (glibc ``mallinfo2``: bytes in use, torch tensors included, plus Arrow's pool). The
heap is the sharp one: the RSS absorbs a few MB of retained data into memory freed earlier (keeping every batch's
labels in a list grows the heap by ~3 MB here but the RSS by ~0.6 MB).
"""

from __future__ import annotations

import ctypes
import gc
import json
import random
from pathlib import Path

from forked import Forked
from pretrain_world import _text

from bart_pretrain.data.pretrain_module import PretrainDataModule
from bart_pretrain.tokenizer import train_tokenizer

N_DOCS = 600  # measured after N and after 5N documents
BUFFER = 50  # documents per streaming buffer
GROWTH_BUDGET_MB = 1.5  # measured: RSS +0.1-0.2 MB, heap +0.02 MB


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _heap_mb() -> float | None:
    import pyarrow

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
        ]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):  # not glibc >= 2.33
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd + pyarrow.total_allocated_bytes()) / 2**20


def _probe(corpus: Path, tokenizer: Path, n: int, buffer: int) -> None:
    """In the forked child: stream the corpus, print the RSS and heap after ``n`` and ``5 n`` documents as JSON."""
    data = PretrainDataModule(
        train_files=str(corpus),
        val_files=None,
        tokenizer_path=str(tokenizer),
        max_length=64,
        max_tokens=512,
        streaming=True,
        buffer_size=buffer,
        num_workers=0,
        seed=0,
    )
    data.setup("fit")
    gc.collect()  # what the test process left for the collector goes before the first mark, not between the marks
    marks, tokens, docs = {}, 0, 0
    for batch in data.train_dataloader():
        docs = (batch["position"][0] + 1) * buffer  # documents read so far (whole buffers)
        tokens += int((batch["labels"] != 1).sum())
        for mark in (n, 5 * n):
            if docs >= mark and mark not in marks:
                gc.collect()
                marks[mark] = {"rss_mb": _rss_mb(), "heap_mb": _heap_mb(), "tokens": tokens}
    print(json.dumps({"marks": {str(k): v for k, v in marks.items()}, "docs": docs, "tokens": tokens}))


def test_streaming_rss_does_not_grow_with_the_number_of_documents(tmp_path):
    rng = random.Random(0)
    docs = [" ".join(_text(rng) for _ in range(6)) for _ in range(5 * N_DOCS)]
    corpus = tmp_path / "big.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
    tok_path = tmp_path / "tokenizer.json"
    train_tokenizer(docs[:100], vocab_size=400).save(tok_path)

    with Forked(lambda: _probe(corpus, tok_path, N_DOCS, BUFFER)) as child:
        lines = child.stdout.readlines()
        assert child.wait(timeout=240) == 0, child.stderr()[-3000:]
    out = json.loads(lines[-1])
    first, last = out["marks"][str(N_DOCS)], out["marks"][str(5 * N_DOCS)]
    assert out["docs"] >= 5 * N_DOCS

    # What streamed between the two marks does not fit the budget, neither as raw text nor as int64 target tokens
    # (the most compact form any retained chunk or batch could take; Python lists of ids take ~6x more).
    text_mb = sum(len(t.encode()) for t in docs[N_DOCS:]) / 2**20
    tokens_mb = (last["tokens"] - first["tokens"]) * 8 / 2**20
    assert text_mb > GROWTH_BUDGET_MB and tokens_mb > GROWTH_BUDGET_MB, (text_mb, tokens_mb)
    streamed = f"from {N_DOCS} to {5 * N_DOCS} documents ({text_mb:.1f} MB of text, {tokens_mb:.1f} MB of tokens)"
    growth = last["rss_mb"] - first["rss_mb"]
    assert growth < GROWTH_BUDGET_MB, f"RSS grew {growth:.2f} MB {streamed}"
    if first["heap_mb"] is not None:
        growth = last["heap_mb"] - first["heap_mb"]
        assert growth < GROWTH_BUDGET_MB, f"live heap grew {growth:.2f} MB {streamed}"
