"""(document, summary) pairs for summarization fine-tuning: loading, tokenization, collation (Lightning-free: inference
encodes its documents with :func:`encode_text`); the DataModule is ``summarization_module``.

Sources: a directory holding ``{train,validation,test}.jsonl`` (the default Debian descriptions set), single local
JSONL/JSON/CSV/Parquet files per split (JSON and CSV may be gzipped), or any `datasets` name (``cnn_dailymail`` with
``article``->``highlights``, ``xsum`` with ``document``->``summary``). Sources are truncated to
``max_source_length``; batches are sized by a token budget with length bucketing (``bart_pretrain.data.batching``),
as fairseq's ``--max-tokens --truncate-source``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch

from bart_pretrain.data import batching
from bart_pretrain.data.documents import builder_options, directory_files, file_suffix, local_files

SPLITS = ("train", "validation", "test")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
READABLE = ".jsonl, .json, .csv, .parquet (JSON and CSV also gzipped: .jsonl.gz, .json.gz, .csv.gz)"


def _split_files(directory: Path, split: str) -> list[str]:
    """The files of ``split`` in ``directory``: ``<split>.jsonl`` (or .json, .csv, .parquet, each but Parquet maybe
    gzipped), or else every file under a folder ``<split>/``."""
    names = [f"{split}{ext}" for ext in LOCAL_FORMATS] + [
        f"{split}{ext}.gz" for ext in LOCAL_FORMATS if ext != ".parquet"
    ]
    found = [name for name in names if (directory / name).is_file()]
    if len(found) > 1:
        raise ValueError(f"{directory}: holds several {split} files ({', '.join(found)}); keep one")
    if found:
        return [str(directory / found[0])]
    if (directory / split).is_dir():
        return directory_files(str(directory / split), LOCAL_FORMATS, READABLE)
    have = sorted(p.name for p in directory.iterdir())
    raise FileNotFoundError(
        f"no {split} file in {directory} (looked for {', '.join(names)} and a folder {split}/); "
        f"it holds: {', '.join(have[:10]) + (' ...' if len(have) > 10 else '') if have else 'nothing'}"
    )


def _local_files(source: str, split: str) -> tuple[list[str], str] | None:
    """The local files of ``split`` under ``source`` (a directory, a file or a glob) and their ``datasets`` builder;
    None if ``source`` is no local path (a ``datasets`` name)."""
    path = Path(source)
    if path.is_dir():
        return local_files(_split_files(path, split), LOCAL_FORMATS, READABLE)
    if any(c in source for c in "*?["):
        return local_files(source, LOCAL_FORMATS, READABLE)
    if file_suffix(source) in LOCAL_FORMATS or os.sep in source or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"summarization data file not found: {source}")
        return local_files(source, LOCAL_FORMATS, READABLE)
    return None


def load_pairs(
    source: str,
    split: str,
    document_column: str = "document",
    summary_column: str = "summary",
    dataset_config: str | None = None,
) -> datasets.Dataset:
    """Load one split as a Dataset with columns ``document`` and ``summary`` (renamed from the given columns).

    ``source``: a directory with ``<split>.jsonl|.json|.csv|.parquet`` (JSON and CSV may be gzipped: ``.jsonl.gz``)
    or a folder ``<split>/`` of such files, a file or glob, or a `datasets` name. A UTF-8 byte-order mark is dropped.
    A missing column raises ValueError naming the file, the column and the available columns.
    """
    local = _local_files(source, split)
    if local is not None:
        files, kind = local
        for f in files:
            if os.path.getsize(f) == 0:
                raise ValueError(f"{f}: the file is empty")
        ds = datasets.load_dataset(kind, data_files=files, split="train", **builder_options(files, kind))
        where = files[0] if len(files) == 1 else f"{source} ({len(files)} files)"
    else:
        ds = datasets.load_dataset(source, dataset_config, split=split)
        where = f"dataset {source!r} split {split!r}"
    for column, flag in ((document_column, "document_column"), (summary_column, "summary_column")):
        if column not in ds.column_names:
            raise ValueError(f"{where}: no column {column!r} (--data.{flag}); available columns: {ds.column_names}")
    ds = ds.select_columns([document_column, summary_column])
    if document_column != "document" or summary_column != "summary":
        ds = ds.rename_columns({document_column: "__document", summary_column: "__summary"})
        ds = ds.rename_columns({"__document": "document", "__summary": "summary"})
    return ds


def encode_text(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """``<s> tokens </s>`` per text, the content truncated so the whole fits in ``max_length`` tokens."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 (room for <s>, one token, </s>); got {max_length}")
    room = max_length - 2
    return [[tokenizer.bos_id, *ids[:room], tokenizer.eos_id] for ids in tokenizer.encode_batch(list(texts))]


def tokenize_pairs(ds: datasets.Dataset, tokenizer, max_source_length: int, max_target_length: int) -> datasets.Dataset:
    """Add ``input_ids`` (truncated document) and ``labels`` (truncated summary); rows with an empty side dropped."""

    def encode(batch):
        docs = [d if isinstance(d, str) else "" for d in batch["document"]]
        sums = [s if isinstance(s, str) else "" for s in batch["summary"]]
        return {
            "input_ids": encode_text(tokenizer, docs, max_source_length),
            "labels": encode_text(tokenizer, sums, max_target_length),
        }

    ds = ds.filter(
        lambda b: [
            isinstance(d, str) and d.strip() != "" and isinstance(s, str) and s.strip() != ""
            for d, s in zip(b["document"], b["summary"], strict=True)
        ],
        batched=True,
    )
    return ds.map(encode, batched=True, batch_size=1000)


@dataclass
class PairBatch:
    """A padded batch: source ``input_ids``/``attention_mask`` (B, S); ``labels`` (B, T) padded with pad_id."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device) -> PairBatch:
        return PairBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels)))


def collate_pairs(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad sources and labels; ``labels == pad_id`` marks positions that carry no loss."""
    input_ids, attention_mask = batching.pad([r["input_ids"] for r in rows], pad_id)
    labels, _ = batching.pad([r["labels"] for r in rows], pad_id)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
