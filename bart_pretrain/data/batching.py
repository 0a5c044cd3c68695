"""Batches by token budget with length bucketing (fairseq's ``--max-tokens`` idea), sharded over ranks.

A batch plan is a pure function of (lengths, max_tokens, seed, epoch): sort by length (random tie-break), cut
greedily so that ``n_samples * longest <= max_tokens``, shuffle the batch order, split the largest batches until
the count divides the number of ranks (so every rank runs the same number of steps and no sample is duplicated or
dropped), and deal batch ``g`` to rank ``g % num_replicas``. The sampler yields :class:`BatchKey` objects; a
map-style dataset turns a key into a collated batch (``DataLoader(ds, sampler=sampler, batch_size=None)``), so a
whole batch is built inside one worker and the batch order is the same for any ``num_workers``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


@dataclass(frozen=True)
class BatchKey:
    """What a dataset needs to build one batch: the sample indices, the epoch (for per-sample random generators)
    and the batch's position in this rank's epoch (for exact resume)."""

    epoch: int
    position: int
    indices: tuple[int, ...]


def plan_batches(
    lengths: np.ndarray,
    max_tokens: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    max_sentences: int | None = None,
    num_replicas: int = 1,
    min_fill: float = 0.95,
) -> list[np.ndarray]:
    """Global batch plan: a list of int64 index arrays, each with ``len(batch) * max(lengths[batch]) <= max_tokens``
    (and at most ``max_sentences`` samples), covering every index exactly once; its length divides ``num_replicas``.
    A batch is also closed before a sample whose length would leave less than ``min_fill`` of it real tokens, so
    every batch but a split one is at least ``min_fill`` real (the sparse long tail gets smaller batches).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens}: must be >= 1")
    if n and lengths.max() > max_tokens:
        raise ValueError(
            f"max_tokens={max_tokens} is smaller than the longest sample ({lengths.max()} tokens, index "
            f"{int(lengths.argmax())}); raise max_tokens (--data.max_tokens) or lower the max length"
        )
    if n < num_replicas:
        raise ValueError(f"{n} samples cannot be shared by {num_replicas} ranks without duplication")
    if not 0.0 <= min_fill <= 1.0:
        raise ValueError(f"min_fill={min_fill}: must be in [0, 1]")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0xBA7C4]))
    tie_break = rng.permutation(n) if shuffle else np.arange(n)
    order = np.lexsort((tie_break, lengths))  # by length, ties in random (or index) order
    sorted_lengths = lengths[order]
    cap = max_sentences or n
    batches, start, real = [], 0, 0
    for i in range(n):  # sorted ascending: the current sample is the longest of the open batch
        size, longest = i - start + 1, sorted_lengths[i]
        underfilled = real + longest < min_fill * size * longest  # padding would pass 1 - min_fill
        if size > cap or size * longest > max_tokens or underfilled:
            batches.append(order[start:i])
            start, real = i, 0
        real += longest
    if n:
        batches.append(order[start:n])
    if shuffle:
        batches = [batches[j] for j in rng.permutation(len(batches))]
    while len(batches) % num_replicas:  # split the biggest batch in two: no sample duplicated, none dropped
        j = max(range(len(batches)), key=lambda k: len(batches[k]))
        half = (len(batches[j]) + 1) // 2
        batches[j : j + 1] = [batches[j][:half], batches[j][half:]]
    return batches


def padding_stats(lengths: np.ndarray, batches: Sequence[np.ndarray]) -> dict[str, float]:
    """Share of real (non-pad) tokens over all padded batches, and its worst single batch."""
    lengths = np.asarray(lengths)
    real = np.array([lengths[b].sum() for b in batches], dtype=np.float64)
    padded = np.array([len(b) * lengths[b].max() for b in batches], dtype=np.float64)
    return {
        "real_token_share": float(real.sum() / max(padded.sum(), 1.0)),
        "min_batch_real_token_share": float((real / np.maximum(padded, 1.0)).min()) if len(batches) else 1.0,
        "batches": float(len(batches)),
        "mean_batch_samples": float(np.mean([len(b) for b in batches])) if len(batches) else 0.0,
    }


class TokenBudgetBatchSampler(DistributedSampler):
    """Yields this rank's :class:`BatchKey` s for the current epoch, from :func:`plan_batches`.

    A ``DistributedSampler`` subclass only so that Lightning neither injects its own distributed sampler nor
    forgets to call :meth:`set_epoch`; sharding is done here. Use with ``DataLoader(dataset, sampler=self,
    batch_size=None)``: the dataset's ``__getitem__`` receives a whole key. ``__len__`` is the full epoch's batch
    count even after :meth:`resume`, so a trainer's step counters stay right while the first epoch starts late.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        max_tokens: int,
        *,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        Sampler.__init__(self)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} must be in [0, num_replicas={num_replicas})")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens, self.max_sentences = int(max_tokens), max_sentences
        self.shuffle, self.seed = shuffle, int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        self._start = 0  # first position of the next iteration (set by resume(), used once)
        self.iterations = 0  # iterators started so far (a resume point set after the first one comes too late)
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._start = 0
        self.epoch = int(epoch)

    def resume(self, epoch: int, position: int) -> None:
        """Make the next iteration start at batch ``position`` of ``epoch`` (the first batch not yet trained on)."""
        self.epoch, self._start = int(epoch), int(position)

    def global_plan(self) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != self.epoch:
            plan = plan_batches(
                self.lengths,
                self.max_tokens,
                seed=self.seed,
                epoch=self.epoch,
                shuffle=self.shuffle,
                max_sentences=self.max_sentences,
                num_replicas=self.num_replicas,
            )
            self._cache = (self.epoch, plan)
        return self._cache[1]

    def local_plan(self) -> list[np.ndarray]:
        return self.global_plan()[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return len(self.local_plan())

    def __iter__(self) -> Iterator[BatchKey]:
        start, self._start = self._start, 0
        epoch = self.epoch
        self.iterations += 1
        for position, batch in enumerate(self.local_plan()):
            if position >= start:
                yield BatchKey(epoch, position, tuple(int(i) for i in batch))


def pad(seqs: Sequence[np.ndarray | Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D int sequences -> ids (B, L) int64 and attention mask (B, L) int64 (1 = real token)."""
    lengths = [len(s) for s in seqs]
    ids = np.full((len(seqs), max(lengths, default=0)), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, (s, n) in enumerate(zip(seqs, lengths, strict=True)):
        ids[row, :n] = s
        mask[row, :n] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


class KeyedBatches(Dataset):
    """Map-style adapter: ``dataset[BatchKey]`` -> ``collate_fn([dataset[i] for i in key.indices])``.

    For data whose samples do not depend on the epoch (e.g. fine-tuning pairs)::

        DataLoader(KeyedBatches(ds, collate), sampler=TokenBudgetBatchSampler(lengths, 4096), batch_size=None)
    """

    def __init__(self, dataset: Any, collate_fn: Callable[[list[Any]], Any]):
        self.dataset, self.collate_fn = dataset, collate_fn

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: BatchKey) -> Any:
        return self.collate_fn([self.dataset[i] for i in key.indices])


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: [start, y0, ..., y_{T-2}]; -100 (ignored labels) become pad."""
    shifted = labels.new_full(labels.shape, decoder_start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill_(shifted == -100, pad_token_id)


def worker_options(num_workers: int) -> dict[str, Any]:
    """The DataLoader arguments for ``num_workers`` worker processes: forked on POSIX (they start with the parent's
    dataset and tokenizer in memory), and deaf to SIGTERM.

    A SIGTERM sent to the whole process group (``timeout``, ``kill -- -PGID``, a scheduler that signals every process
    of a job) reaches the workers too. torch's workers die of a SIGTERM that is not their parent's, and the main
    process then raises from its SIGCHLD handler wherever it is, instead of saving at the end of its step. Ignoring it
    leaves the decision to the main process, which stops its workers as it stops; they also exit on their own once it
    is gone."""
    if not num_workers:
        return {"num_workers": 0}
    return {
        "num_workers": num_workers,
        "multiprocessing_context": "fork" if os.name == "posix" else None,
        "worker_init_fn": _ignore_sigterm,
    }


def _ignore_sigterm(worker_id: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
