"""The fine-tuning DataModule (``--data.*`` of ``bart-pretrain finetune``): (source, target) pairs of any task, their
columns and split names in config, from a directory, files or a ``datasets`` name, tokenized with the module's
tokenizer, in token-budget batches with length bucketing.
"""

from __future__ import annotations

import functools

import datasets
import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from bart_pretrain.data import batching
from bart_pretrain.data.pairs import SPLITS, collate_pairs, load_pairs, tokenize_pairs
from bart_pretrain.errors import reading_input
from bart_pretrain.paths import InputPath


class PairsDataModule(pl.LightningDataModule):
    def __init__(
        self,
        source: InputPath = "data/summarization",
        train_file: InputPath | None = None,
        validation_file: InputPath | None = None,
        test_file: InputPath | None = None,
        dataset_config: str | None = None,
        source_column: str = "document",
        target_column: str = "summary",
        split_names: dict[str, str] | None = None,
        max_source_length: int = 512,
        max_target_length: int = 128,
        max_tokens: int = 4096,
        train_subset: int | None = None,
        validation_subset: int | None = 256,
        metric_subset: int = 32,
        test_subset: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ):
        """
        Args:
            source: a directory of splits (train/validation/test files in any readable format, .jsonl, .csv,
                .parquet ..., or folders of them), a `save_to_disk` directory, or a `datasets` name (e.g.
                cnn_dailymail with --data.dataset_config 3.0.0).
            train_file: a local file or glob for the train split, overriding ``source``.
            validation_file: same for the validation split.
            test_file: same for the test split.
            dataset_config: the `datasets` configuration name (e.g. "3.0.0" for cnn_dailymail).
            source_column: the column holding the model's input (summarization: the document; cnn_dailymail:
                article).
            target_column: the column holding the reference output (summarization: the summary; cnn_dailymail:
                highlights).
            split_names: the dataset's names of the splits, e.g. {"validation": "valid"}.
            max_source_length: documents are truncated to this many tokens (with <s> and </s>).
            max_target_length: summaries are truncated to this many tokens (with <s> and </s>).
            max_tokens: token budget of a batch: batch size x max(source, target) length of its longest pair.
            train_subset: use only this many training pairs (a fixed random subset), null = all.
            validation_subset: validation loss on this many pairs (fixed random subset), null = all.
            metric_subset: the validation metric (``--model.metrics``) from beam search on this many pairs (a fixed
                subset of the above; 0: none).
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
            else:  # a bug: the fine-tune attaches its model's tokenizer (--model.tokenizer_path)
                raise RuntimeError("the summarization data has no tokenizer: attach_tokenizer() the model's")
        return self.tokenizer

    def pairs(self, split: str) -> datasets.Dataset:
        """The raw (source, target) pairs of ``split``, subsampled as configured (cached)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if split not in self.raw:
            h = self.hparams
            explicit = {"train": h.train_file, "validation": h.validation_file, "test": h.test_file}[split]
            name = (h.split_names or {}).get(split, split)
            ds = load_pairs(explicit or h.source, name, h.source_column, h.target_column, h.dataset_config)
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
                raise ValueError(f"the {split} split has no pair with a non-empty source and target")
            self.encoded[split] = ds.select_columns(["input_ids", "labels"])
        return self.encoded[split]

    @reading_input()  # the pairs files, the tokenizer: what is wrong with them is the user's
    def setup(self, stage: str | None = None) -> None:
        self._resolve_tokenizer()
        if stage in (None, "fit"):
            self.encoded_split("train")
        if stage in (None, "fit", "validate"):
            self.encoded_split("validation")

    def metric_pairs(self) -> tuple[list[str], list[str]]:
        """The fixed (sources, references) on which the validation metric is computed."""
        ds = self.pairs("validation")
        ds = ds.select(range(min(self.hparams.metric_subset, len(ds))))
        return list(ds["source"]), list(ds["target"])

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
            **batching.worker_options(self.hparams.num_workers),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)
