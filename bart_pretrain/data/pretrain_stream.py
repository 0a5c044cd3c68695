"""Pretraining data, streaming: a ``datasets`` iterable (local files or a hub name) read in buffers of documents,
each buffer tokenized, bucketed and corrupted by one worker; memory stays flat. Batches come out in the same order
for any ``num_workers``, every rank gets the same number, and a resume continues at the batch after the last one the
trainer consumed. The rows come from ``bart_pretrain.data.files`` (:func:`~bart_pretrain.data.files.iter_rows`), checked
up front by its ``check_stream_source``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import noising
from bart_pretrain.data.batching import TokenBudgetBatchSampler, worker_options
from bart_pretrain.data.documents import encode_documents
from bart_pretrain.data.files import iter_rows
from bart_pretrain.data.pretrain_dataset import Corruptor, collate_denoising

STREAM_INDEX_STRIDE = 1 << 32  # sample index of chunk j in stream buffer k: k * STRIDE + j (unique, no counting)


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
        fixed_epoch: int | None = None,
    ):
        self.rows, self.corruptor, self.tokenize, self.text_column = rows, corruptor, tokenize, text_column
        self.max_tokens, self.max_sentences, self.seed = max_tokens, max_sentences, int(seed)
        self.buffer_size, self.num_replicas, self.rank = buffer_size, num_replicas, rank
        self.fixed_epoch = fixed_epoch
        self.pad_id, self.decoder_start_id = corruptor.ctx.pad_id, corruptor.ctx.eos_id  # as DenoisingDataset's
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
            if k % workers != worker:
                continue
            if k < self.start[0]:
                # Before the resume point: nothing to train on, but one (empty) item all the same. The DataLoader
                # takes items from its workers in turn, so a worker that skipped its buffer silently would put its
                # next buffer ahead of the other workers' (a resume in buffer 1 of 2 workers would start at buffer 2).
                yield []
                continue
            docs = self._docs(buffer)
            lengths = np.array([len(d["input_ids"]) for d in docs], dtype=np.int64)
            if len(docs) < self.num_replicas:  # the stream's tail: too few chunks to share without duplicates
                return
            # The buffer's batches as the map-style sampler plans them: this rank's share, from the resume point.
            sampler = TokenBudgetBatchSampler(
                lengths,
                self.max_tokens,
                max_sentences=self.max_sentences,
                seed=self.seed,
                num_replicas=self.num_replicas,
                rank=self.rank,
            )
            sampler.resume(epoch * STREAM_INDEX_STRIDE + k, self.start[1] if k == self.start[0] else 0)
            out = []
            for key in sampler:
                indices = [k * STREAM_INDEX_STRIDE + i for i in key.indices]
                with self.corruptor.torch_untouched():
                    pairs = [
                        self.corruptor(docs[i], noising.sample_rng(self.seed, epoch, g))
                        for i, g in zip(key.indices, indices, strict=True)
                    ]
                collated = collate_denoising(pairs, self.pad_id, self.decoder_start_id)
                collated.update(epoch=self.epoch, position=(k, key.position), indices=indices)
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
            collate_fn=_identity,
            **worker_options(self.num_workers),
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


class StreamRows:
    """Picklable ``rows()`` for streaming local files, ``save_to_disk`` directories (memory-mapped, read in order) or a
    ``datasets`` name through ``datasets`` streaming.

    Every DataLoader worker reads the whole stream and keeps its own buffers (:class:`StreamingDenoisingDataset`):
    the rows are read through ``iter(batch_size=...)``, because iterating a ``datasets`` stream inside a worker
    hands each worker only some of the files (a corpus of one file would reach one worker; the buffers the others
    own would be lost)."""

    def __init__(self, files: str | list[str], text_column: str, batch_size: int = 1000):
        self.files, self.text_column, self.batch_size = files, text_column, batch_size

    def __call__(self) -> Iterator[dict]:
        return iter_rows(self.files, self.text_column, self.batch_size)


class TokenizeTexts:
    """Picklable ``texts -> chunks per text`` for the streaming dataset's ``tokenize``."""

    def __init__(self, tok, max_length: int):
        self.tok, self.max_length = tok, max_length

    def __call__(self, texts: list[str]) -> list[list[dict]]:
        return encode_documents(texts, self.tok, self.max_length)
