"""Pretraining data: documents -> on-the-fly corruption in DataLoader workers -> token-budget batches (BART, sec. 2.2).

Every sample is corrupted with its own generator ``noising.sample_rng(seed, epoch, index)``, and a whole batch is
built from a :class:`~bart_pretrain.batching.BatchKey` inside one worker, so a batch is a pure function of
(seed, epoch, indices): the same for any ``num_workers``, any number of ranks' sharding, and after a resume. The
data module remembers the last batch the trainer consumed (not the last one a worker prefetched) and saves it in
the checkpoint, so ``--ckpt_path last`` continues at the exact batch mid-epoch.

Two sources: map-style (tokenized once with ``datasets.map``, cached) and streaming (a ``datasets`` iterable read
in buffers of documents, each buffer tokenized, bucketed and corrupted by one worker; memory stays flat).
"""

from __future__ import annotations

import copy
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

import noising
from bart_pretrain.batching import BatchKey, TokenBudgetBatchSampler, pad, padding_stats, plan_batches
from noising.schedule import NoiseSchedule, ScheduledPipeline

# Lightning warns that a mid-epoch resume is unreliable unless the DataLoader itself is stateful; ours resumes through
# the data module's state (robust to Lightning issue #20550), so the warning does not apply.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")

STREAM_INDEX_STRIDE = 1 << 32  # sample index of chunk j in stream buffer k: k * STRIDE + j (unique, no counting)


def collate_denoising(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int, decoder_start_id: int
) -> dict[str, Any]:
    """(corrupted source, original target) pairs -> the model's batch; decoder inputs are the targets shifted right
    (``</s> <s> a b ...``, BART). Also returns real/padded token counts for the padding report."""
    from bart_pretrain.model import shift_tokens_right

    input_ids, attention_mask = pad([s for s, _ in pairs], pad_id)
    labels, label_mask = pad([t for _, t in pairs], pad_id)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": shift_tokens_right(labels, pad_id, decoder_start_id),
        "labels": labels,
        "real_tokens": int(attention_mask.sum() + label_mask.sum()),
        "padded_tokens": int(attention_mask.numel() + label_mask.numel()),
    }


def _rows(docs: Any, indices: Sequence[int]) -> list[dict]:
    """Rows of a ``datasets.Dataset`` (one Arrow take) or of a list of dicts."""
    if isinstance(docs, list):
        return [docs[i] for i in indices]
    cols = docs[list(indices)]
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


class Corruptor:
    """Picklable corruption of one document row: ``(row, rng, step) -> (source, target)`` int64 arrays; ``step``
    (optimizer steps, fractional inside an accumulation window) sets the strength under a ``schedule``; None
    means full strength (validation)."""

    def __init__(self, noise: noising.Pipeline, ctx: noising.NoiseContext, schedule: NoiseSchedule | None = None):
        noising.check_plugins(noise, ctx)  # refuses a plug-in breaking the contract or drawing from global random state
        self.noise, self.ctx = noise, ctx
        self.scheduled = ScheduledPipeline(noise, schedule) if schedule is not None and schedule.steps else None

    def __call__(self, row: dict, rng: np.random.Generator, step: float | None = None) -> tuple[np.ndarray, ...]:
        from bart_pretrain.data.documents import to_document

        doc = to_document(row)
        if step is None or self.scheduled is None:
            return self.noise(doc, rng, self.ctx).tokens, doc.tokens
        return self.scheduled(doc, rng, self.ctx, step).tokens, doc.tokens

    def corrupted(self, row: dict, seed: int, epoch: int, index: int) -> np.ndarray | None:
        """Bool per target token of sample ``(seed, epoch, index)``: True where the corruption removed it (masked,
        deleted, replaced), False where the source still holds it; None if the noise cannot be traced."""
        from bart_pretrain.data.documents import to_document
        from noising.provenance import corrupted_positions

        return corrupted_positions(self.noise, to_document(row), seed, epoch, index, self.ctx)


class DenoisingDataset(Dataset):
    """Map-style: ``dataset[BatchKey]`` -> a collated batch of corrupted documents (see :func:`collate_denoising`).

    ``fixed_epoch`` pins the corruption (validation: the same corrupted set every time it is evaluated).
    ``trace`` adds ``corrupted`` (B, T) int8 aligned with ``labels``: 1 where the corruption removed the target
    token, 0 where the source holds it, -1 on padding or where the noise cannot be traced (validation only: it
    runs the noise a second time). ``batches_per_epoch`` and ``batches_per_step`` (gradient accumulation) turn a
    batch key into the optimizer step that a noise schedule reads.
    """

    def __init__(
        self,
        docs: Any,
        corruptor: Corruptor,
        *,
        seed: int,
        pad_id: int = 1,
        decoder_start_id: int = 2,
        fixed_epoch: int | None = None,
        trace: bool = False,
        batches_per_epoch: int = 0,
        batches_per_step: int = 1,
    ):
        self.docs, self.corruptor, self.seed = docs, corruptor, int(seed)
        self.pad_id, self.decoder_start_id, self.fixed_epoch = pad_id, decoder_start_id, fixed_epoch
        self.trace, self.batches_per_epoch, self.batches_per_step = trace, batches_per_epoch, batches_per_step

    def step(self, key: BatchKey) -> float | None:
        """The optimizer step that trains on this batch (None for a fixed-epoch set: full-strength noise)."""
        if self.fixed_epoch is not None:
            return None
        return (key.epoch * self.batches_per_epoch + key.position) / self.batches_per_step

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, key: BatchKey) -> dict[str, Any]:
        epoch = key.epoch if self.fixed_epoch is None else self.fixed_epoch
        rows, step = _rows(self.docs, key.indices), self.step(key)
        pairs = [
            self.corruptor(row, noising.sample_rng(self.seed, epoch, i), step)
            for i, row in zip(key.indices, rows, strict=True)
        ]
        batch = collate_denoising(pairs, self.pad_id, self.decoder_start_id)
        if self.trace:
            marks = batch["labels"].new_full(batch["labels"].shape, -1, dtype=torch.int8)
            for r, (i, row) in enumerate(zip(key.indices, rows, strict=True)):
                corrupted = self.corruptor.corrupted(row, self.seed, epoch, i)
                if corrupted is not None:
                    marks[r, : len(corrupted)] = torch.from_numpy(corrupted.astype(np.int8))
            batch["corrupted"] = marks
        batch.update(epoch=key.epoch, position=key.position, indices=list(key.indices))
        return batch


class StreamingDenoisingDataset(IterableDataset):
    """Streaming: documents are read in buffers of ``buffer_size * num_replicas`` rows; worker ``w`` of ``W`` owns
    buffers ``k % W == w`` (it skips the others' rows without tokenizing them), tokenizes its buffer, plans
    token-budget batches over it (divisible by the ranks), corrupts and collates this rank's share, and yields the
    buffer's batches as one list; :class:`StreamingLoader` flattens them in buffer order, so batches come out in
    the same order for any ``num_workers`` and every rank gets the same number of batches.

    ``rows()`` returns a fresh iterator of rows: raw text rows (``text_column``) are tokenized by ``tokenize``,
    rows that already hold ``input_ids``/``word_starts``/``sentence_starts`` are used as they are.
    """

    def __init__(
        self,
        rows: Callable[[], Iterable[dict]],
        corruptor: Corruptor,
        *,
        max_tokens: int,
        seed: int,
        tokenize: Callable[[list[str]], list[list[dict]]] | None = None,
        text_column: str = "text",
        buffer_size: int = 1024,
        max_sentences: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        pad_id: int = 1,
        decoder_start_id: int = 2,
        fixed_epoch: int | None = None,
    ):
        self.rows, self.corruptor, self.tokenize, self.text_column = rows, corruptor, tokenize, text_column
        self.max_tokens, self.max_sentences, self.seed = max_tokens, max_sentences, int(seed)
        self.buffer_size, self.num_replicas, self.rank = buffer_size, num_replicas, rank
        self.pad_id, self.decoder_start_id, self.fixed_epoch = pad_id, decoder_start_id, fixed_epoch
        self.epoch = 0
        self.start: tuple[int, int] = (0, 0)  # (buffer, batch within it) of the next batch to produce

    def _docs(self, rows: list[dict]) -> list[dict]:
        if rows and "input_ids" in rows[0]:
            return rows
        if self.tokenize is None:
            raise ValueError(f"streaming rows hold no input_ids and no tokenizer was given (columns: {list(rows[0])})")
        texts = [r[self.text_column] for r in rows]
        return [chunk for chunks in self.tokenize(texts) for chunk in chunks]

    def __iter__(self) -> Iterator[list[dict]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        rows = iter(self.rows())
        per_buffer = self.buffer_size * self.num_replicas
        for k in itertools.count():
            buffer = list(itertools.islice(rows, per_buffer))
            if not buffer:
                return
            if k % workers != worker or k < self.start[0]:
                continue
            docs = self._docs(buffer)
            lengths = np.array([len(d["input_ids"]) for d in docs], dtype=np.int64)
            if len(docs) < self.num_replicas:  # the stream's tail: too few chunks to share without duplicates
                return
            plan = plan_batches(
                lengths,
                self.max_tokens,
                seed=self.seed,
                epoch=epoch * STREAM_INDEX_STRIDE + k,
                max_sentences=self.max_sentences,
                num_replicas=self.num_replicas,
            )
            first = self.start[1] if k == self.start[0] else 0
            out = []
            for j, batch in enumerate(plan[self.rank :: self.num_replicas]):
                if j < first:
                    continue
                indices = [k * STREAM_INDEX_STRIDE + int(i) for i in batch]
                pairs = [
                    self.corruptor(docs[int(i)], noising.sample_rng(self.seed, epoch, g))
                    for i, g in zip(batch, indices, strict=True)
                ]
                collated = collate_denoising(pairs, self.pad_id, self.decoder_start_id)
                collated.update(epoch=self.epoch, position=(k, j), indices=indices)
                out.append(collated)
            yield out


class _EpochSetter:
    """Lightning calls ``loader.sampler.set_epoch(epoch)``; this forwards it to the streaming dataset."""

    def __init__(self, dataset: StreamingDenoisingDataset):
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.dataset.epoch:
            self.dataset.start = (0, 0)
        self.dataset.epoch = int(epoch)


class StreamingLoader:
    """An iterable of batches over a :class:`StreamingDenoisingDataset`: one DataLoader iterator per epoch
    (workers see the current epoch and resume point), buffers flattened in order."""

    def __init__(self, dataset: StreamingDenoisingDataset, num_workers: int = 0):
        self.dataset, self.num_workers = dataset, num_workers
        self.sampler = _EpochSetter(dataset)

    def resume_after(self, epoch: int, position: Sequence[int]) -> None:
        self.dataset.epoch = int(epoch)
        self.dataset.start = (int(position[0]), int(position[1]) + 1)

    def __iter__(self) -> Iterator[dict]:
        dataset = copy.copy(self.dataset)  # this epoch's (epoch, start); the resume point is used once
        self.dataset.start = (0, 0)
        loader = DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_identity,
            multiprocessing_context="fork" if self.num_workers and os.name == "posix" else None,
        )
        produced = 0
        for buffer in loader:
            produced += len(buffer)
            yield from buffer
        if not produced and dataset.start == (0, 0):  # else Lightning would start empty epochs forever
            raise ValueError(
                "the streamed corpus gave no batch: no document with text (or fewer chunks than ranks); "
                "check --data.train_files and --data.text_column"
            )


def _identity(x: Any) -> Any:
    return x


def document_lengths(docs: Any) -> np.ndarray:
    """Token count of every row of a tokenized ``datasets.Dataset`` (or a list of rows), without decoding rows."""
    if isinstance(docs, list):
        return np.array([len(r["input_ids"]) for r in docs], dtype=np.int64)
    import pyarrow.compute as pc

    parts = [
        np.asarray(pc.list_value_length(t["input_ids"]), dtype=np.int64)
        for t in docs.with_format("arrow").iter(batch_size=65536)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def real_token_report(lengths: np.ndarray, max_tokens: int, seed: int = 0) -> dict[str, float]:
    """Padding of the target side of one epoch's plan (sources vary with the noise; see the logged share)."""
    return padding_stats(lengths, plan_batches(lengths, max_tokens, seed=seed))


class PretrainDataModule(pl.LightningDataModule):
    """Corpus -> tokenized, cached documents -> corrupted token-budget batches (``--data.*``)."""

    def __init__(
        self,
        train_files: str | list[str] = "data/corpus/train.jsonl",
        val_files: str | list[str] | None = "data/corpus/validation.jsonl",
        text_column: str = "text",
        tokenizer_path: str = "data/tokenizer/tokenizer.json",
        noise: str | list[dict] = "configs/noise/bart_large.yaml",
        noise_schedule: NoiseSchedule | None = None,
        max_length: int = 512,
        max_tokens: int = 4096,
        max_sentences: int | None = None,
        max_train_documents: int | None = None,
        max_val_documents: int | None = None,
        streaming: bool = False,
        buffer_size: int = 1024,
        num_workers: int = 1,
        tokenize_num_proc: int = 1,
        seed: int = 1234,
    ):
        """
        Args:
            train_files: training text: .txt/.jsonl/.json/.parquet files, a directory, a glob, a list, or a
                ``datasets`` name (see ``bart_pretrain.data.documents.load_text_dataset``).
            val_files: validation text (same forms); null: no validation.
            text_column: column holding the text in JSON/Parquet rows.
            tokenizer_path: tokenizer.json (or a directory with it, or vocab.json + merges.txt); the model's
                vocabulary size is read from it.
            noise: a noise recipe (YAML path under configs/noise/ or a list of {class_path, init_args}).
            noise_schedule: a curriculum: the recipe's strength ramps from ``start`` to full over ``steps``
                optimizer steps (see noising.schedule); null: full strength throughout. Validation always
                uses the full recipe.
            max_length: documents are cut at sentence boundaries into chunks of at most this many tokens.
            max_tokens: token budget of a batch: samples x longest target (per device, per micro-batch).
            max_sentences: optional cap on samples per batch.
            max_train_documents: use a seeded random subset of this many training documents (null: all).
            max_val_documents: same for validation.
            streaming: read the training text as a stream (for corpora too large to tokenize up front).
            buffer_size: streaming: documents per rank bucketed together.
            num_workers: DataLoader worker processes doing the corruption (0: in the main process).
            tokenize_num_proc: processes for the one-off cached tokenization.
            seed: seed of the batch order and of every sample's corruption.
        """
        super().__init__()
        if max_tokens < max_length:
            raise ValueError(f"data.max_tokens={max_tokens} must be >= data.max_length={max_length}")
        from bart_pretrain.noise_config import load_noise

        if isinstance(noise_schedule, dict):
            noise_schedule = NoiseSchedule(**noise_schedule)
        if noise_schedule is not None and noise_schedule.steps and streaming:
            raise ValueError("data.noise_schedule needs map-style data (the step of a streamed batch is not known)")
        # A bad recipe (or a schedule that cannot scale it) fails now, not after the corpus is tokenized.
        ScheduledPipeline(load_noise(noise), noise_schedule or NoiseSchedule())
        self.noise_schedule = noise_schedule
        self.save_hyperparameters()
        self.train_files, self.val_files, self.text_column = train_files, val_files, text_column
        self.tokenizer_path, self.noise_spec = tokenizer_path, noise
        self.max_length, self.max_tokens, self.max_sentences = max_length, max_tokens, max_sentences
        self.max_train_documents, self.max_val_documents = max_train_documents, max_val_documents
        self.streaming, self.buffer_size = streaming, buffer_size
        self.num_workers, self.tokenize_num_proc, self.seed = num_workers, tokenize_num_proc, seed
        self.tokenizer = None
        self.train_docs = self.val_docs = None
        self._train_loader: Any = None
        self._consumed: tuple[int, Any] | None = None  # (epoch, position) of the last batch the trainer trained on
        self._resume: tuple[int, Any] | None = None

    # -- preparation (rank 0 first: the tokenization is cached, other ranks then load the cache) -----------------
    def _load_tokenizer(self):
        from bart_pretrain.tokenizer import Tokenizer

        if self.tokenizer is None:
            if not os.path.exists(self.tokenizer_path):
                raise FileNotFoundError(
                    f"data.tokenizer_path={self.tokenizer_path!r} does not exist (looked for "
                    f"{os.path.abspath(self.tokenizer_path)}); run `make data` (or `bart-pretrain train-tokenizer`)"
                )
            self.tokenizer = Tokenizer.from_file(self.tokenizer_path)
        return self.tokenizer

    def _documents(self, files: str | list[str], limit: int | None, split: str):
        from bart_pretrain.data.documents import load_text_dataset, tokenize_dataset

        ds = load_text_dataset(files, self.text_column, split=split)
        if limit is not None and limit < len(ds):
            rng = np.random.default_rng(self.seed)
            ds = ds.select(np.sort(rng.choice(len(ds), size=limit, replace=False)))
        docs = tokenize_dataset(ds, self._load_tokenizer(), self.max_length, self.text_column, self.tokenize_num_proc)
        if len(docs) == 0:
            raise ValueError(f"{files}: no document with any token after tokenization")
        return docs

    def prepare_data(self) -> None:
        if not self.streaming:
            self._documents(self.train_files, self.max_train_documents, "train")
        if self.val_files:
            self._documents(self.val_files, self.max_val_documents, "validation")

    def setup(self, stage: str | None = None) -> None:
        from bart_pretrain.noise_config import load_noise

        tok = self._load_tokenizer()
        self.corruptor = Corruptor(load_noise(self.noise_spec), tok.noise_context(self.max_length), self.noise_schedule)
        if self.streaming and stage in (None, "fit"):
            from bart_pretrain.guards import check_stream_source

            check_stream_source(self.train_files, self.text_column)  # what load_text_dataset checks, up front
        if self.train_docs is None and not self.streaming and stage in (None, "fit"):
            self.train_docs = self._documents(self.train_files, self.max_train_documents, "train")
            self.train_lengths = document_lengths(self.train_docs)
        if self.val_docs is None and self.val_files:
            self.val_docs = self._documents(self.val_files, self.max_val_documents, "validation")
            self.val_lengths = document_lengths(self.val_docs)

    @property
    def vocab_size(self) -> int:
        return self._load_tokenizer().vocab_size

    # -- loaders -------------------------------------------------------------------------------------------------
    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: Dataset, sampler: TokenBudgetBatchSampler) -> DataLoader:
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,  # workers must see each epoch's sampler state afresh
            multiprocessing_context="fork" if self.num_workers and os.name == "posix" else None,
        )

    def train_dataloader(self):
        world, rank = self._ranks()
        tok = self._load_tokenizer()
        if self.streaming:
            dataset = StreamingDenoisingDataset(
                _StreamRows(self.train_files, self.text_column),
                self.corruptor,
                max_tokens=self.max_tokens,
                seed=self.seed,
                tokenize=_Tokenize(tok, self.max_length),
                text_column=self.text_column,
                buffer_size=self.buffer_size,
                max_sentences=self.max_sentences,
                num_replicas=world,
                rank=rank,
                pad_id=tok.pad_id,
                decoder_start_id=tok.eos_id,
            )
            loader = StreamingLoader(dataset, self.num_workers)
        else:
            sampler = TokenBudgetBatchSampler(
                self.train_lengths,
                self.max_tokens,
                max_sentences=self.max_sentences,
                seed=self.seed,
                num_replicas=world,
                rank=rank,
            )
            dataset = DenoisingDataset(
                self.train_docs,
                self.corruptor,
                seed=self.seed,
                pad_id=tok.pad_id,
                decoder_start_id=tok.eos_id,
                batches_per_epoch=len(sampler),
                batches_per_step=self.trainer.accumulate_grad_batches if self.trainer is not None else 1,
            )
            loader = self._loader(dataset, sampler)
        self._train_loader = loader
        if self._resume is not None:
            self._apply_resume()
        return loader

    def val_dataloader(self):
        if self.val_docs is None:
            return []
        world, rank = self._ranks()
        tok = self._load_tokenizer()
        sampler = TokenBudgetBatchSampler(
            self.val_lengths, self.max_tokens, shuffle=False, seed=self.seed, num_replicas=world, rank=rank
        )
        dataset = DenoisingDataset(
            self.val_docs, self.corruptor, seed=self.val_seed, pad_id=tok.pad_id, decoder_start_id=tok.eos_id,
            fixed_epoch=0, trace=True,
        )  # fmt: skip
        return self._loader(dataset, sampler)

    @property
    def val_seed(self) -> int:
        """Seed of the validation corruption (epoch 0, always): validation sees one fixed corrupted set."""
        return self.seed + 1

    def val_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(corrupted source, original) of validation document ``index``, exactly as validation corrupts it."""
        return self.corruptor(self.val_docs[index], noising.sample_rng(self.val_seed, 0, index))

    # -- exact resume --------------------------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training and isinstance(batch, dict) and "position" in batch:
            self._consumed = (int(batch["epoch"]), batch["position"])
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self._consumed is None:
            return {}
        epoch, position = self._consumed
        return {"epoch": epoch, "position": position, "seed": self.seed, "streaming": self.streaming}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if state.get("seed") != self.seed or state.get("streaming") != self.streaming:
            raise ValueError(
                f"the checkpoint's data position was saved with seed={state.get('seed')}, "
                f"streaming={state.get('streaming')}; this run has data.seed={self.seed}, "
                f"data.streaming={self.streaming}: resuming would not continue the same data order"
            )
        self._resume = (int(state["epoch"]), state["position"])
        self._consumed = self._resume
        if self._train_loader is not None:
            self._apply_resume()

    def _apply_resume(self) -> None:
        epoch, position = self._resume
        loader = self._train_loader
        if isinstance(loader, StreamingLoader):
            loader.resume_after(epoch, position)
        else:
            if loader.sampler.iterations:
                raise RuntimeError(
                    "the train loader started before the checkpoint's data position was restored, so the run would "
                    "not continue at the right batch (Lightning issue #20550: something read "
                    "trainer.estimated_stepping_batches in configure_optimizers under a strategy that restores "
                    "checkpoints after setup, e.g. FSDP/DeepSpeed); use --trainer.max_steps for the schedule instead"
                )
            loader.sampler.resume(epoch, int(position) + 1)
        self._resume = None


class _StreamRows:
    """Picklable ``rows()`` for streaming local files or a ``datasets`` name through ``datasets`` streaming."""

    def __init__(self, files: str | list[str], text_column: str):
        self.files, self.text_column = files, text_column

    def __call__(self) -> Iterable[dict]:
        import datasets

        from bart_pretrain.data.documents import _LOCAL_SUFFIXES, _expand, _looks_local, _suffix

        if _looks_local(self.files):
            paths = _expand(self.files)
            kind = _LOCAL_SUFFIXES.get(_suffix(paths[0]))
            kwargs = {"sample_by": "paragraph"} if kind == "text" else {}
            stream = datasets.load_dataset(kind, data_files=paths, split="train", streaming=True, **kwargs)
            if kind == "text" and self.text_column != "text":  # .txt rows have one column, "text": as load_text_dataset
                stream = stream.rename_column("text", self.text_column)
            return stream
        return datasets.load_dataset(self.files, split="train", streaming=True)


class _Tokenize:
    def __init__(self, tok, max_length: int):
        self.tok, self.max_length = tok, max_length

    def __call__(self, texts: list[str]) -> list[list[dict]]:
        from bart_pretrain.data.documents import encode_documents

        return encode_documents(texts, self.tok, self.max_length)


__all__ = [
    "Corruptor",
    "DenoisingDataset",
    "PretrainDataModule",
    "StreamingDenoisingDataset",
    "StreamingLoader",
    "collate_denoising",
    "document_lengths",
    "real_token_report",
]
