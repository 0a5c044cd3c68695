"""(source, target) pairs for fine-tuning (summarization, or any task): reading a split through the one reader
(``bart_pretrain.data.files``), tokenization, collation; Lightning-free (inference encodes its texts with
:func:`encode_text`). The DataModule is ``pairs_module``.

Sources: a directory of splits (``{train,validation,test}.jsonl`` as the default Debian sets, any readable format,
or folders ``train/`` ...), a ``save_to_disk`` directory (a ``DatasetDict`` of the splits), single local files per
split, or any ``datasets`` name (``cnn_dailymail`` with ``article``->``highlights``). Sources are truncated to
``max_source_length``; batches are sized by a token budget with length bucketing (``bart_pretrain.data.batching``),
as fairseq's ``--max-tokens --truncate-source``.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import torch

from bart_pretrain.data import batching
from bart_pretrain.data.files import SPLITS, read_dataset

__all__ = ["SPLITS", "collate_pairs", "encode_text", "load_pairs", "tokenize_pairs"]


def load_pairs(
    source: str,
    split: str,
    source_column: str = "document",
    target_column: str = "summary",
    dataset_config: str | None = None,
) -> datasets.Dataset:
    """One split as a Dataset with the columns ``source`` and ``target`` (from ``source_column`` and
    ``target_column``), read by :func:`bart_pretrain.data.files.read_dataset` (a directory of splits stands for
    ``split``'s files). A missing column raises ValueError naming the file, the column and the columns present."""
    columns = {source_column: "--data.source_column", target_column: "--data.target_column"}
    ds = read_dataset(source, columns, split, dataset_config, splits_in_directory=True)
    if source_column == target_column:
        raise ValueError(f"--data.source_column and --data.target_column are both {source_column!r}; they must differ")
    ds = ds.select_columns([source_column, target_column])
    if (source_column, target_column) != ("source", "target"):
        ds = ds.rename_columns({source_column: "__source", target_column: "__target"})
        ds = ds.rename_columns({"__source": "source", "__target": "target"})
    return ds


def encode_text(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """``<s> tokens </s>`` per text, the content truncated so the whole fits in ``max_length`` tokens."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 (room for <s>, one token, </s>); got {max_length}")
    room = max_length - 2
    return [[tokenizer.bos_id, *ids[:room], tokenizer.eos_id] for ids in tokenizer.encode_batch(list(texts))]


def tokenize_pairs(ds: datasets.Dataset, tokenizer, max_source_length: int, max_target_length: int) -> datasets.Dataset:
    """Add ``input_ids`` (truncated source) and ``labels`` (truncated target); rows with an empty side dropped."""

    def encode(batch):
        docs = [d if isinstance(d, str) else "" for d in batch["source"]]
        sums = [s if isinstance(s, str) else "" for s in batch["target"]]
        return {
            "input_ids": encode_text(tokenizer, docs, max_source_length),
            "labels": encode_text(tokenizer, sums, max_target_length),
        }

    ds = ds.filter(
        lambda b: [
            isinstance(d, str) and d.strip() != "" and isinstance(s, str) and s.strip() != ""
            for d, s in zip(b["source"], b["target"], strict=True)
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
