"""A large corpus made from a small one, for measuring start-up, tokenization throughput, memory and cache size
at scale without any download (`bart-pretrain build-data --scale_corpus 1GB --out /tmp/big`): shuffled passes over
the source documents, every pass after the first perturbed (each copy rotated at a sentence boundary, half of them
with a sentence of another document appended), written as many JSONL files. Same source and seed, same bytes.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

from bart_pretrain.io import atomic_open, atomic_write_json

MANIFEST = ".manifest.json"
"""Beside the parts (hidden: a directory read as a corpus skips it)."""
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``1GB`` (10^9), ``200MB``, ``1.5GiB`` (2^30 each), ``4096``. Raises ValueError otherwise."""
    match = _SIZE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r}: not a size; write e.g. 1GB, 200MB, 1.5GiB or a number of bytes")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


def perturb(text: str, other: str, rng: random.Random) -> str:
    """``text`` rotated at a sentence boundary after a random offset (the sentences after it come first) and, half of
    the time, the first sentence of ``other`` appended: a document no pass has written before, of real sentences."""
    cut = text.find(". ", rng.randrange(len(text))) if text else -1
    if cut > 0:
        text = f"{text[cut + 2 :]} {text[: cut + 1]}"
    if rng.random() < 0.5 and other:
        end = other.find(". ")
        text = f"{text} {other[: end + 1] if end > 0 else other[:200]}"
    return text


def part_name(k: int) -> str:
    return f"part-{k:05d}.jsonl"


def scale_corpus(texts: list[str], out: str | os.PathLike, size: int, files: int, seed: int, source: str = "") -> dict:
    """Write ``files`` JSONL files (``{"id", "text"}`` rows, ``part-00000.jsonl`` ...) of about ``size`` bytes in all
    under ``out``: pass 0 is ``texts`` shuffled, every later pass a new shuffle of perturbed copies (:func:`perturb`),
    until ``size`` bytes are written (each file about ``size / files``, at least one document); each file is written
    atomically. Returns the manifest (also written to :data:`MANIFEST`)."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError(f"{source or 'the source'}: no document with text to scale")
    if files < 1:
        raise ValueError(f"--scale_files {files}: must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    per_file = -(-size // files)

    def rows():
        for p in range(1 << 30):
            order = list(range(len(texts)))
            rng.shuffle(order)
            for i in order:
                text = texts[i] if p == 0 else perturb(texts[i], texts[rng.randrange(len(texts))], rng)
                yield (json.dumps({"id": f"{p}-{i}", "text": text}, ensure_ascii=False) + "\n").encode()

    stream, written, counts = rows(), 0, []
    for k in range(files):
        n = part = 0
        with atomic_open(out / part_name(k), "wb") as f:
            while n == 0 or (part < per_file and written < size):  # every file holds a document
                line = next(stream)
                f.write(line)
                part, n = part + len(line), n + 1
                written += len(line)
        counts.append(n)
    manifest = {"source": source, "source_documents": len(texts), "seed": seed, "size": size, "bytes": written,
                "files": files, "documents": sum(counts), "documents_per_file": counts}  # fmt: skip
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
