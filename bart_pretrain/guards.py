"""Checks that turn a bad input into a clear error before work starts (DESIGN.md section 8): a resume checkpoint of
another model shape or vocabulary, a streaming corpus that is empty, not UTF-8 or lacks its text column, unknown keys
in a config section. Each raises ``ValueError`` naming the file or flag, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
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


_PREFIX_BYTES = 1 << 20  # a streamed corpus may be huge: check the first MiB of each file up front


def check_stream_source(source: str | list[str], text_column: str = "text", flag: str = "--data.train_files") -> None:
    """The checks ``load_text_dataset`` makes, for a corpus read as a stream: every local file exists, has a known
    type and is not empty; text/JSON files start with UTF-8 (the first MiB); the first row has a string column
    ``text_column``. A ``datasets`` name (not local) only gets the first-row check."""
    import codecs

    import datasets

    from bart_pretrain.data.documents import _LOCAL_SUFFIXES, _expand, _looks_local, _suffix

    if _looks_local(source):
        paths = _expand(source)
        for p in paths:
            if not os.path.isfile(p):
                raise ValueError(f"{flag}: {p}: no such file")
            kind = _LOCAL_SUFFIXES.get(_suffix(p))
            if kind is None:
                raise ValueError(f"{flag}: {p}: unknown file type; use .txt, .jsonl, .json or .parquet")
            with open(p, "rb") as f:
                head = f.read(_PREFIX_BYTES)
            if not head.strip():
                raise ValueError(f"{flag}: {p}: the file is empty (no text to train on)")
            if kind != "parquet":
                try:
                    codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"{flag}: {p}: not UTF-8 text (invalid byte 0x{head[e.start]:02x} at byte offset {e.start}); "
                        "convert it, e.g. `iconv -f latin1 -t utf-8`"
                    ) from None
        kind = _LOCAL_SUFFIXES[_suffix(paths[0])]
        kwargs = {"sample_by": "paragraph"} if kind == "text" else {}
        stream = datasets.load_dataset(kind, data_files=paths, split="train", streaming=True, **kwargs)
        where = ", ".join(paths)
    else:
        stream = datasets.load_dataset(str(source), split="train", streaming=True)
        where, kind = str(source), None
    if kind == "text" and text_column != "text":
        text_column = "text"  # .txt rows have one column, renamed by the loader
    try:
        first = next(iter(stream), None)
    except Exception as e:  # the builders' errors are long chains: name the files
        cause = e.__cause__ or e
        raise ValueError(f"{flag}: could not read {where}: {type(cause).__name__}: {cause}") from e
    if first is None:
        raise ValueError(f"{flag}: {where}: no rows (no text to train on)")
    if text_column not in first:
        raise ValueError(
            f"{flag}: {where}: no column {text_column!r} (columns: {sorted(first)}); set --data.text_column"
        )
    value = first[text_column]
    if value is not None and not isinstance(value, str):
        raise ValueError(
            f"{flag}: {where}: column {text_column!r} holds {type(value).__name__} ({value!r:.40}), not strings"
        )
