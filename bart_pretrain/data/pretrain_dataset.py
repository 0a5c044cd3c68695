"""Pretraining data, map-style: documents -> on-the-fly corruption in DataLoader workers -> token-budget batches (BART,
sec. 2.2). Every sample is corrupted with its own generator ``noising.sample_rng(seed, epoch, index)``, and a whole
batch is built from a :class:`~bart_pretrain.data.batching.BatchKey` inside one worker, so a batch is a pure function
of (seed, epoch, indices): the same for any ``num_workers``, any number of ranks' sharding, and after a resume.
The streaming source is ``pretrain_stream``; the DataModule joining both is ``pretrain_module``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

import noising
from bart_pretrain.data.batching import BatchKey, pad, shift_tokens_right
from bart_pretrain.data.documents import to_document
from noising.pipeline import RNG_RULE
from noising.schedule import NoiseSchedule, ScheduledPipeline


def collate_denoising(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int, decoder_start_id: int
) -> dict[str, Any]:
    """(source, target) pairs (corrupted document and original, or an objective's pair) -> the model's batch; decoder
    inputs are the targets shifted right (``</s> <s> a b ...``, BART). Also returns real/padded token counts for the
    padding report."""
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
        self.noise, self.ctx = noise, ctx
        with self.torch_untouched():
            noising.check_plugins(noise, ctx)  # refuses a plug-in breaking the contract or drawing from global state
        self.scheduled = ScheduledPipeline(noise, schedule) if schedule is not None and schedule.steps else None

    @contextlib.contextmanager
    def torch_untouched(self) -> Iterator[None]:
        """Around the corruption of one batch (nothing else runs there): if the recipe has plug-ins and torch's global
        generator moved, a :class:`noising.PluginContractError` naming them. The pipeline itself watches Python's and
        numpy's global generators on every plug-in call; torch's state costs microseconds to read, so once a batch."""
        if not self.noise.plugins:
            yield
            return
        before = torch.default_generator.get_state()
        yield
        if not torch.equal(before, torch.default_generator.get_state()):
            names = " or ".join(self.noise.plugins)
            raise noising.PluginContractError(
                f"noise plug-in {names} drew from torch's global generator (its state changed while a batch was "
                f"corrupted); the rule: {RNG_RULE}"
            )

    def __call__(self, row: dict, rng: np.random.Generator, step: float | None = None) -> tuple[np.ndarray, ...]:
        """(source, target): the corrupted document and the original, or what the recipe's objective makes."""
        doc = to_document(row)
        if step is None or self.scheduled is None:
            example = self.noise.example(doc, rng, self.ctx)
        else:
            example = self.scheduled.example(doc, rng, self.ctx, step)
        return example.source, example.target

    def corrupted(self, row: dict, seed: int, epoch: int, index: int) -> np.ndarray | None:
        """Bool per target token of sample ``(seed, epoch, index)``: True where the corruption removed it (masked,
        deleted, replaced), False where the source still holds it; None if the noise cannot be traced, or the recipe
        ends in an objective (its target is not the document)."""
        from noising.provenance import corrupted_positions

        if self.noise.objective is not None:
            return None
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
        fixed_epoch: int | None = None,
        trace: bool = False,
        batches_per_epoch: int = 0,
        batches_per_step: int = 1,
    ):
        self.docs, self.corruptor, self.seed = docs, corruptor, int(seed)
        # The special ids are the tokenizer's, through the noise context: <pad>, and </s> to start the decoder (BART's)
        self.pad_id, self.decoder_start_id = corruptor.ctx.pad_id, corruptor.ctx.eos_id
        self.fixed_epoch = fixed_epoch
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
        with self.corruptor.torch_untouched():
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
