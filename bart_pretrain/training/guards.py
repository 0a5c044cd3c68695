"""Checks that turn a bad input into a clear error before work starts (DESIGN.md section 8): a resume checkpoint of
another model shape or vocabulary, unknown keys in a config section (a streamed corpus is checked by
``bart_pretrain.data.pretrain_stream.check_stream_source``). Each raises ``ValueError`` naming the file or flag,
the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

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
    raise ValueError(
        f"{where} holds a model of another shape: {fields}{hint}. Resume with the model config "
        "(--model.model_config) and tokenizer it was saved with, or start a new run without --ckpt_path"
    )


def check_keys(section: str, given: Mapping[str, Any], allowed: Any) -> None:
    """Raise if ``given`` has keys that ``allowed`` (a dataclass or an iterable of names) does not accept."""
    names = [f.name for f in dataclasses.fields(allowed)] if dataclasses.is_dataclass(allowed) else list(allowed)
    unknown = [k for k in given if k not in names]
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(names)}")
