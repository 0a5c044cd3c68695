"""(document, summary) pairs for summarization fine-tuning: loading, tokenization, token-budget batches.

Sources: a directory holding ``{train,validation,test}.jsonl`` (the default Debian descriptions set, DESIGN.md 5),
single local JSONL/JSON/CSV/Parquet files per split, or any `datasets` name (``cnn_dailymail`` with
``article``->``highlights``, ``xsum`` with ``document``->``summary``). Sources are truncated to
``max_source_length``; batches are sized by a token budget with length bucketing (``bart_pretrain.batching``),
as fairseq's ``--max-tokens --truncate-source``.
"""

from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from bart_pretrain import batching

SPLITS = ("train", "validation", "test")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _local_files(source: str, split: str) -> list[str] | None:
    """The local files of ``split`` under ``source`` (a directory, a file or a glob); None if it is no local path."""
    path = Path(source)
    if path.is_dir():
        found = [str(path / f"{split}{ext}") for ext in LOCAL_FORMATS if (path / f"{split}{ext}").is_file()]
        if not found:
            have = sorted(p.name for p in path.iterdir())
            raise FileNotFoundError(
                f"no {split} file in {source} (looked for {', '.join(split + e for e in LOCAL_FORMATS)}); "
                f"it holds: {have or 'nothing'}"
            )
        return found[:1]
    if any(c in source for c in "*?["):
        files = sorted(glob.glob(source))
        if not files:
            raise FileNotFoundError(f"no file matches {source!r}")
        return files
    if path.suffix in LOCAL_FORMATS or os.sep in source or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"summarization data file not found: {source}")
        return [source]
    return None


def load_pairs(
    source: str,
    split: str,
    document_column: str = "document",
    summary_column: str = "summary",
    dataset_config: str | None = None,
) -> datasets.Dataset:
    """Load one split as a Dataset with columns ``document`` and ``summary`` (renamed from the given columns).

    ``source``: a directory with ``<split>.jsonl|.json|.csv|.parquet``, a file or glob, or a `datasets` name.
    A missing column raises ValueError naming the file, the column and the available columns.
    """
    files = _local_files(source, split)
    if files is not None:
        suffix = Path(files[0]).suffix
        if suffix not in LOCAL_FORMATS:
            raise ValueError(f"{files[0]}: unsupported format {suffix!r}; use one of {sorted(LOCAL_FORMATS)}")
        for f in files:
            if os.path.getsize(f) == 0:
                raise ValueError(f"{f}: the file is empty")
        ds = datasets.load_dataset(LOCAL_FORMATS[suffix], data_files=files, split="train")
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


class SummarizationDataModule(pl.LightningDataModule):
    def __init__(
        self,
        source: str = "data/summarization",
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        dataset_config: str | None = None,
        document_column: str = "document",
        summary_column: str = "summary",
        split_names: dict[str, str] | None = None,
        tokenizer_file: str | None = None,
        max_source_length: int = 512,
        max_target_length: int = 128,
        max_tokens: int = 4096,
        train_subset: int | None = None,
        validation_subset: int | None = 256,
        rouge_subset: int = 32,
        test_subset: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ):
        """
        Args:
            source: a directory with train/validation/test .jsonl|.json|.csv|.parquet files, or a `datasets` name
                (e.g. cnn_dailymail with --data.dataset_config 3.0.0).
            train_file: a local file or glob for the train split, overriding ``source``.
            validation_file: same for the validation split.
            test_file: same for the test split.
            dataset_config: the `datasets` configuration name (e.g. "3.0.0" for cnn_dailymail).
            document_column: the column holding the document (cnn_dailymail: article).
            summary_column: the column holding the reference summary (cnn_dailymail: highlights).
            split_names: the dataset's names of the splits, e.g. {"validation": "valid"}.
            tokenizer_file: tokenizer.json; default: the fine-tuned model's tokenizer.
            max_source_length: documents are truncated to this many tokens (with <s> and </s>).
            max_target_length: summaries are truncated to this many tokens (with <s> and </s>).
            max_tokens: token budget of a batch: batch size x max(source, target) length of its longest pair.
            train_subset: use only this many training pairs (a fixed random subset), null = all.
            validation_subset: validation loss on this many pairs (fixed random subset), null = all.
            rouge_subset: validation ROUGE from beam search on this many pairs (a fixed subset of the above).
            test_subset: evaluate on this many test pairs (fixed random subset), null = the whole test split.
            seed: seed of the subsets and of the batch order (with the epoch).
            num_workers: DataLoader workers.
        """
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = None
        self.raw: dict[str, datasets.Dataset] = {}
        self.encoded: dict[str, datasets.Dataset] = {}

    # --- loading --------------------------------------------------------------------------------------------
    def attach_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def _resolve_tokenizer(self):
        if self.tokenizer is None:
            module = getattr(getattr(self, "trainer", None), "lightning_module", None)
            if getattr(module, "tokenizer", None) is not None:
                self.tokenizer = module.tokenizer
            elif self.hparams.tokenizer_file is not None:
                from bart_pretrain.tokenizer import Tokenizer

                self.tokenizer = Tokenizer.from_file(self.hparams.tokenizer_file)
            else:
                raise ValueError("the summarization data needs a tokenizer: set --data.tokenizer_file")
        return self.tokenizer

    def pairs(self, split: str) -> datasets.Dataset:
        """The raw (document, summary) pairs of ``split``, subsampled as configured (cached)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if split not in self.raw:
            h = self.hparams
            explicit = {"train": h.train_file, "validation": h.validation_file, "test": h.test_file}[split]
            name = (h.split_names or {}).get(split, split)
            ds = load_pairs(explicit or h.source, name, h.document_column, h.summary_column, h.dataset_config)
            n = {"train": h.train_subset, "validation": h.validation_subset, "test": h.test_subset}[split]
            if n is not None and n < len(ds):
                ds = ds.shuffle(seed=h.seed).select(range(n))
            self.raw[split] = ds
        return self.raw[split]

    def encoded_split(self, split: str) -> datasets.Dataset:
        if split not in self.encoded:
            h = self.hparams
            ds = tokenize_pairs(self.pairs(split), self._resolve_tokenizer(), h.max_source_length, h.max_target_length)
            if len(ds) == 0:
                raise ValueError(f"the {split} split has no pair with a non-empty document and summary")
            self.encoded[split] = ds.select_columns(["input_ids", "labels"])
        return self.encoded[split]

    def setup(self, stage: str | None = None) -> None:
        self._resolve_tokenizer()
        if stage in (None, "fit"):
            self.encoded_split("train")
        if stage in (None, "fit", "validate"):
            self.encoded_split("validation")

    def rouge_subset(self) -> tuple[list[str], list[str]]:
        """The fixed (documents, references) on which validation ROUGE is computed."""
        ds = self.pairs("validation")
        ds = ds.select(range(min(self.hparams.rouge_subset, len(ds))))
        return list(ds["document"]), list(ds["summary"])

    # --- loaders --------------------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.encoded_split(split)
        # fairseq's token count of a pair: the longer of its source and target.
        lengths = np.maximum([len(x) for x in ds["input_ids"]], [len(x) for x in ds["labels"]])
        trainer = getattr(self, "trainer", None)
        sampler = batching.TokenBudgetBatchSampler(
            lengths,
            self.hparams.max_tokens,
            shuffle=shuffle,
            seed=self.hparams.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        collate = functools.partial(collate_pairs, pad_id=self._resolve_tokenizer().pad_id)
        return DataLoader(
            batching.KeyedBatches(ds.with_format(None), collate),
            sampler=sampler,
            batch_size=None,
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)
