"""Sharded training: :class:`ShardedStrategy`, Lightning's FSDP strategy as ``--trainer.strategy sharded`` (on CPU
with gloo too, where Lightning's own ``fsdp`` refuses), with gradient clipping by norm, one FSDP unit per
encoder layer, and sharded checkpoints written atomically; plus :func:`memory_per_rank`, the memory the
weights, gradients and AdamW states of a shape take per rank under DDP and FSDP (the README's scale-out table).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.precision import FSDPPrecision
from pytorch_lightning.strategies import FSDPStrategy, StrategyRegistry

from bart_pretrain.loading import SHARDED_META, is_sharded_checkpoint
from bart_pretrain.model import BartConfig, EncoderLayer

STRATEGY_NAME = "sharded"
PARTIAL, PREVIOUS = ".partial", ".previous"  # suffixes of the directories an atomic sharded save goes through


class ShardedPrecision(FSDPPrecision):
    """Lightning's FSDP precision plugin, plus gradient clipping by norm (which it refuses): the norm over all
    ranks' shards, by ``FullyShardedDataParallel.clip_grad_norm_`` of the wrapped model, as DDP clips the whole."""

    sharded_module: Any = None  # the FSDP root module; set by ShardedStrategy once it has wrapped the model

    def clip_grad_by_norm(self, optimizer: torch.optim.Optimizer, clip_val: int | float) -> None:
        if self.sharded_module is None:
            raise RuntimeError("ShardedPrecision: gradient clipping before the model was wrapped")
        self.sharded_module.clip_grad_norm_(clip_val)


class ShardedStrategy(FSDPStrategy):
    """FSDP (``FULL_SHARD`` by default: weights, gradients and AdamW states split over the ranks) on CUDA or on CPU
    (gloo). Differences from Lightning's ``fsdp``: it runs on CPU (torch's FSDP takes ``device_id=cpu``; Lightning
    passes none there, and torch then refuses), clips gradients by norm (``--trainer.gradient_clip_val``), wraps each
    encoder layer as its own FSDP unit (gathered for its forward, then freed), writes
    sharded checkpoints by default (``last.ckpt`` is a directory: one file per rank) and writes them atomically:
    into ``last.ckpt.partial``, then swapped in by renames, so a kill mid-write leaves the previous checkpoint."""

    strategy_name = STRATEGY_NAME

    def __init__(self, *args: Any, state_dict_type: str = "sharded", auto_wrap_policy: Any = None, **kwargs: Any):
        if auto_wrap_policy is None:
            # Not the decoder layers: Bart.decode_masked calls each one's cross-attention key/value projection
            # outside the layer's forward, where FSDP would not have gathered its weights. They stay in the root
            # unit with the embeddings (gathered for the whole step).
            auto_wrap_policy = {EncoderLayer}
        super().__init__(*args, state_dict_type=state_dict_type, auto_wrap_policy=auto_wrap_policy, **kwargs)

    @property
    def precision_plugin(self) -> ShardedPrecision:
        plugin = self._precision_plugin
        return plugin if plugin is not None else ShardedPrecision("32-true")

    @precision_plugin.setter
    def precision_plugin(self, plugin: Any) -> None:
        if plugin is not None and not isinstance(plugin, FSDPPrecision):
            raise TypeError(f"--trainer.strategy {STRATEGY_NAME} takes FSDP's precision plugin, not {plugin}")
        if plugin is not None and not isinstance(plugin, ShardedPrecision):
            plugin = ShardedPrecision(plugin.precision, getattr(plugin, "scaler", None))
        self._precision_plugin = plugin

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        # Each parameter's shape before it is flattened into shards: the optimizer decides weight decay by it.
        for p in model.parameters():
            p.unsharded_ndim = p.ndim
        if self.root_device.type == "cpu":
            from torch.distributed.fsdp import FullyShardedDataParallel

            wrapped = FullyShardedDataParallel(
                module=model,
                cpu_offload=self.cpu_offload,
                mixed_precision=self.mixed_precision_config,
                sharding_strategy=self.sharding_strategy,
                device_id=torch.device("cpu"),
                **self.kwargs,
            )
        else:
            wrapped = super()._setup_model(model)
        self.precision_plugin.sharded_module = wrapped
        return wrapped

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any | None = None) -> None:
        if self._state_dict_type != "sharded":
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        path = Path(self.broadcast(filepath))
        partial = path.with_name(path.name + PARTIAL)
        if self.global_rank == 0 and partial.exists():
            shutil.rmtree(partial)
        self.barrier()
        super().save_checkpoint(checkpoint, partial, storage_options)  # the shards (fsynced by torch), then meta.pt
        self.barrier()
        if self.global_rank == 0:
            with open(partial / SHARDED_META, "rb") as f:
                os.fsync(f.fileno())
            swap_in(partial, path)
        self.barrier()


@contextlib.contextmanager
def full_weights(strategy: Any) -> Iterator[None]:
    """Inside: the model's parameters are whole on every rank, read-only (FSDP's ``summon_full_params``), for what
    runs the model outside the training/validation step (generation); under any other strategy, nothing to do."""
    if not isinstance(strategy, FSDPStrategy):
        yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(strategy.model, writeback=False):
        yield


def swap_in(new: Path, path: Path) -> None:
    """Put directory ``new`` at ``path`` by renames: the old checkpoint (file or directory) goes to ``path.previous``
    first and is deleted last, so a complete checkpoint exists at every moment: ``path``, else ``path.previous``
    (:func:`resumable` finds it)."""
    previous = path.with_name(path.name + PREVIOUS)
    if path.exists():
        _remove(previous)  # stale: path is complete
        os.rename(path, previous)
    os.rename(new, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _remove(previous)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def resumable(path: str | os.PathLike) -> Path | None:
    """The checkpoint to resume ``path`` from: ``path`` itself (a file, or a sharded checkpoint), else the complete
    ``path.previous`` a save killed between :func:`swap_in`'s two renames left; None if there is neither."""
    path = Path(path)
    previous = path.with_name(path.name + PREVIOUS)
    if path.is_file() or is_sharded_checkpoint(path):
        return path
    return previous if not path.exists() and (previous.is_file() or is_sharded_checkpoint(previous)) else None


def remove_partial(path: str | os.PathLike) -> Path | None:
    """Remove ``path.partial``, a sharded save of ``path`` that was killed before it completed; returns it if found."""
    partial = Path(path).with_name(Path(path).name + PARTIAL)
    if not partial.is_dir():
        return None
    shutil.rmtree(partial)
    return partial


if STRATEGY_NAME not in StrategyRegistry:
    StrategyRegistry.register(STRATEGY_NAME, ShardedStrategy, description=ShardedStrategy.__doc__.splitlines()[0])


# -- memory per rank --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Memory:
    """Bytes per rank of the model's state in training (activations are not counted: they depend on the batch)."""

    weights: float
    gradients: float
    optimizer: float
    peak_gathered: float
    """FSDP: the unsharded weights gathered for compute, in the compute dtype: the root unit (embeddings, position
    tables, the decoder layers: gathered through the whole step) plus one encoder layer (0 under DDP, where every
    rank holds all)."""

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.peak_gathered


def parameter_counts(config: BartConfig) -> tuple[int, int, int]:
    """(all parameters, those of :class:`ShardedStrategy`'s root unit (all but the encoder layers), one encoder
    layer's) of a Bart of ``config``, counted on the meta device."""
    from bart_pretrain.model import Bart

    with torch.device("meta"):
        model = Bart(config)
    total = sum(p.numel() for p in model.parameters())
    units = [m for m in model.modules() if isinstance(m, EncoderLayer)]
    layers = [sum(p.numel() for p in m.parameters()) for m in units]
    return total, total - sum(layers), max(layers)


def memory_per_rank(config: BartConfig, ranks: int, strategy: str, precision: str = "bf16-mixed") -> Memory:
    """The model state's bytes per rank: ``strategy`` "ddp" (every rank holds everything) or "fsdp" (FULL_SHARD:
    weights, gradients and AdamW's two moments split over ``ranks``; one layer gathered at a time, in the compute
    dtype). ``precision``: "32-true" or "bf16-mixed" (Lightning's: fp32 weights, gradients and optimizer states,
    bf16 compute; under FSDP the gathered layer is bf16)."""
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy={strategy!r}: 'ddp' or 'fsdp'")
    if precision not in ("32-true", "bf16-mixed"):
        raise ValueError(f"precision={precision!r}: '32-true' or 'bf16-mixed'")
    if ranks < 1:
        raise ValueError(f"ranks={ranks}: must be >= 1")
    total, root, layer = parameter_counts(config)
    share = 1 if strategy == "ddp" else ranks
    fp32 = 4 * total / share
    gathered = 0.0 if strategy == "ddp" else (root + layer) * (2 if precision == "bf16-mixed" else 4)
    return Memory(weights=fp32, gradients=fp32, optimizer=2 * fp32, peak_gathered=gathered)


def shape_config(name: str, vocab_size: int = 50265) -> BartConfig:
    """The shipped shape ``configs/model/<name>.yaml`` with ``vocab_size`` (BART's by default)."""
    import yaml

    from bart_pretrain.paths import shipped

    fields = yaml.safe_load(shipped(f"configs/model/{name}.yaml").read_text(encoding="utf-8"))
    return BartConfig(**{**fields, "vocab_size": vocab_size})


def memory_table(shapes: tuple[str, ...] = ("base", "large"), ranks: int = 8, precision: str = "bf16-mixed") -> str:
    """The README's table: :func:`memory_per_rank` of each shipped shape (BART's 50,265-token vocabulary) on
    ``ranks`` ranks, DDP against FSDP, in GiB."""
    gib = 2.0**30
    lines = [
        f"| shape | parameters | strategy ({ranks} ranks, {precision}) | weights | gradients | AdamW moments "
        "| gathered layers | total per rank |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for shape in shapes:
        config = shape_config(shape)
        total = parameter_counts(config)[0]
        for strategy in ("ddp", "fsdp"):
            m = memory_per_rank(config, ranks, strategy, precision)
            cells = [m.weights, m.gradients, m.optimizer, m.peak_gathered, m.total]
            lines.append(
                f"| {shape} | {total / 1e6:.1f} M | {strategy} | " + " | ".join(f"{c / gib:.2f}" for c in cells) + " |"
            )
    return "\n".join(lines)
