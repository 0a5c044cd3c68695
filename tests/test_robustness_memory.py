"""Memory stays flat: streaming pretraining data (``--data.streaming true``: a JSONL file read through ``datasets``
streaming, tokenized, chunked, bucketed and corrupted buffer by buffer) holds no more memory after 5N documents than
after N, although the documents streamed in between would take several times the allowed growth if anything kept
them.

Measured in a fresh interpreter (no pytest heap, no other test's caches) after the first N documents and again after
5N: the RSS (from /proc), and the live heap (glibc ``mallinfo2``: bytes in use, torch tensors included, plus Arrow's
pool). The heap is the sharp one: the RSS absorbs a few MB of retained data into memory freed earlier (keeping every
batch's labels in a list grows the heap by ~3 MB here but the RSS by ~0.6 MB).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import pytest
from pretrain_world import _text

from bart_pretrain.tokenizer import train_tokenizer

N_DOCS = 600  # measured after N and after 5N documents
BUFFER = 50  # documents per streaming buffer
GROWTH_BUDGET_MB = 1.5  # measured: RSS +0.1-0.2 MB, heap +0.02 MB

_PROBE = textwrap.dedent(
    """
    import gc, json, sys
    from bart_pretrain.data.pretrain_module import PretrainDataModule

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    def heap_mb():
        import ctypes, pyarrow

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
        try:
            mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        except (OSError, AttributeError):  # not glibc >= 2.33
            return None
        mallinfo2.restype = MallInfo2
        info = mallinfo2()
        return (info.uordblks + info.hblkhd + pyarrow.total_allocated_bytes()) / 2**20

    corpus, tokenizer, n, buffer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    data = PretrainDataModule(
        train_files=corpus, val_files=None, tokenizer_path=tokenizer, noise="configs/noise/bart_large.yaml",
        max_length=64, max_tokens=512, streaming=True, buffer_size=buffer, num_workers=0, seed=0,
    )
    data.setup("fit")
    marks, tokens, docs = {}, 0, 0
    for batch in data.train_dataloader():
        docs = (batch["position"][0] + 1) * buffer  # documents read so far (whole buffers)
        tokens += int((batch["labels"] != 1).sum())
        for mark in (n, 5 * n):
            if docs >= mark and mark not in marks:
                gc.collect()
                marks[mark] = {"rss_mb": rss_mb(), "heap_mb": heap_mb(), "tokens": tokens}
    print(json.dumps({"marks": {str(k): v for k, v in marks.items()}, "docs": docs, "tokens": tokens}))
    """
)


@pytest.mark.slow
def test_streaming_rss_does_not_grow_with_the_number_of_documents(tmp_path):
    rng = random.Random(0)
    docs = [" ".join(_text(rng) for _ in range(6)) for _ in range(5 * N_DOCS)]
    corpus = tmp_path / "big.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
    tok_path = tmp_path / "tokenizer.json"
    train_tokenizer(docs[:100], vocab_size=400).save(tok_path)

    cmd = [sys.executable, "-c", _PROBE, str(corpus), str(tok_path), str(N_DOCS), str(BUFFER)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
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
