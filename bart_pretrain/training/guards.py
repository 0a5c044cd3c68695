"""Checks that turn a bad input into a clear error before work starts: a resume checkpoint of another model shape or
vocabulary, unknown keys in a config section, sequence lengths the model's position table cannot hold, a run
directory that holds a run (a streamed corpus is checked by ``bart_pretrain.data.pretrain_stream.check_stream_source``).
Each raises :class:`~bart_pretrain.errors.UserError` naming the file or flag, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bart_pretrain.errors import UserError

# BartConfig fields that decide the shapes of the weights: a checkpoint only loads into a model that agrees on all.
SHAPE_FIELDS = (
    "vocab_size",
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "max_position_embeddings",
)


def check_resume_compatible(checkpoint: Mapping[str, Any], model_config: Any, ckpt_path: str | None = None) -> None:
    """Raise if ``checkpoint`` (a Lightning checkpoint dict with ``hyper_parameters.model_config``) was saved by a model
    of another shape than ``model_config`` (a ``BartConfig`` or dict): names every differing field and the flags
    that set them, instead of torch's list of mismatched tensors."""
    saved = dict(checkpoint.get("hyper_parameters", {}).get("model_config") or {})
    if not saved:
        return  # not ours: let the state-dict loading speak
    current = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    diff = {k: (saved.get(k), current.get(k)) for k in SHAPE_FIELDS if saved.get(k) != current.get(k)}
    if not diff:
        return
    where = f"checkpoint {ckpt_path}" if ckpt_path else "the checkpoint"
    fields = ", ".join(f"{k}={old} (this run: {new})" for k, (old, new) in diff.items())
    hint = ""
    if "vocab_size" in diff:
        saved_tok = checkpoint.get("hyper_parameters", {}).get("tokenizer_path")
        hint = f"; the vocabulary comes from the tokenizer: it was trained with --data.tokenizer_path={saved_tok}"
    raise UserError(
        f"{where} holds a model of another shape: {fields}{hint}. Resume with the model config "
        "(--model.model_config) and tokenizer it was saved with, or start a new run without --ckpt_path"
    )


def check_keys(section: str, given: Mapping[str, Any], allowed: Any) -> None:
    """Raise if ``given`` has keys that ``allowed`` (a dataclass or an iterable of names) does not accept."""
    names = [f.name for f in dataclasses.fields(allowed)] if dataclasses.is_dataclass(allowed) else list(allowed)
    unknown = [k for k in given if k not in names]
    if unknown:
        raise UserError(f"{section}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(names)}")


def check_lengths(max_position_embeddings: int, **lengths: int | None) -> None:
    """Raise if a sequence length (``{"--data.max_length": 512}``) exceeds what the model's learned position table
    holds (``max_position_embeddings`` positions per sequence, ``<s>`` and ``</s>`` included): such a run would die at
    the first batch that long, possibly hours in."""
    for flag, length in lengths.items():
        if length is not None and length > max_position_embeddings:
            raise UserError(
                f"{flag}={length}: longer than the model's position table (max_position_embeddings="
                f"{max_position_embeddings}); use at most {max_position_embeddings}, or a model with more positions "
                "(--model.model_config.max_position_embeddings)"
            )


def runs_in(directory: str | Path) -> list[Path]:
    """The checkpoints in ``directory`` (any depth): what a new run there would overwrite."""
    directory = Path(directory)
    return sorted(directory.rglob("*.ckpt")) if directory.is_dir() else []


def check_new_run(directory: str | Path, what: str, resume: str | None = None) -> None:
    """Raise if ``directory`` (the ``what`` flag) already holds a run a new run would overwrite; ``resume``: how to
    continue it instead (e.g. ``resume it with --ckpt_path last``), None when runs there cannot be resumed."""
    found = runs_in(directory)
    if not found:
        return
    shown = ", ".join(str(p.relative_to(directory)) for p in found[:3]) + (", ..." if len(found) > 3 else "")
    ways = [*([resume] if resume else []), f"start over with --overwrite true (moves it to {directory}.old-<time>)",
            f"or pick another {what}"]  # fmt: skip
    raise UserError(f"{what} {directory} holds a run ({shown}); {', '.join(ways)}")
