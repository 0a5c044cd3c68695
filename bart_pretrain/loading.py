"""Loading a trained model without Lightning (inference: ``summarize``, ``export-hf``): :func:`load_model` /
:func:`load_bart` for our Lightning ``.ckpt`` files (read with ``weights_only=True``, an allow-list of what they
hold), the sharded checkpoint directories of ``--trainer.strategy sharded`` (consolidated on reading) or a
transformers BART directory, and the tokenizer record a checkpoint carries (:data:`TOKENIZER_KEY`).
Writing checkpoints is training's (``bart_pretrain.training.checkpoints``).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bart_pretrain.errors import UserError

TOKENIZER_KEY = "tokenizer"
"""``checkpoint["tokenizer"]``: ``{"path": absolute path it was read from, "sha256": Tokenizer.fingerprint(),
"json": the serialized tokenizer}``; the tokenizer travels with the weights (~200 KB beside megabytes of weights), so a
checkpoint keeps working when the file it came from moves or changes."""


SHARDED_META = "meta.pt"
"""The file of a sharded checkpoint directory (Lightning's FSDP format) holding all but the weights and optimizer
states, which are torch.distributed.checkpoint shards beside it (``.metadata``, one ``*.distcp`` per rank)."""


def is_sharded_checkpoint(path: str | os.PathLike) -> bool:
    """A directory a sharded save wrote: ``meta.pt`` and ``.metadata`` (and the shards)."""
    path = Path(path)
    return path.is_dir() and (path / SHARDED_META).is_file() and (path / ".metadata").is_file()


def read_sharded_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A sharded checkpoint directory as the dict an unsharded one holds: ``meta.pt``'s entries plus the full
    ``state_dict`` gathered from the shards (the optimizer states are left out: inference does not need them).
    torch.distributed.checkpoint reads it in this one process, without a process group."""
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    path = Path(path)
    ckpt = read_checkpoint(path / SHARDED_META)
    with tempfile.TemporaryDirectory() as tmp:
        dcp_to_torch_save(path, Path(tmp) / "consolidated.pt")
        full = torch.load(Path(tmp) / "consolidated.pt", map_location="cpu", weights_only=True)
    if not isinstance(full, dict) or "model" not in full:
        raise UserError(f"{path}: a sharded checkpoint without model weights (keys: {sorted(full)[:5]})")
    ckpt["state_dict"] = full["model"]
    return ckpt


def tokenizer_record(tokenizer, path: str | os.PathLike | None) -> dict[str, str]:
    """What :data:`TOKENIZER_KEY` holds for ``tokenizer`` (read from ``path``, if known)."""
    return {
        "path": str(Path(path).resolve()) if path else "",
        "sha256": tokenizer.fingerprint(),
        "json": tokenizer.to_str(),
    }


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint dict by ``torch.load(weights_only=True)``: tensors, plain containers and the config dataclasses our
    modules may save (an allow-list); anything else is refused, since unpickling it could run arbitrary code. A file
    that is not a checkpoint (truncated, text, random bytes) is a :class:`UserError` naming it."""
    from bart_pretrain.generation import GenerationConfig
    from bart_pretrain.optim import OptimConfig

    # Where checkpoints written before a move pickled these classes (the name stays readable, it runs no code).
    former = {
        "bart_pretrain.evaluate.GenerationConfig": GenerationConfig,
        "bart_pretrain.training.OptimConfig": OptimConfig,
    }
    allowed = [OptimConfig, GenerationConfig, *((cls, name) for name, cls in former.items())]
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch.load's words for others name no file
        size = os.path.getsize(path)
        kind = "an empty file" if size == 0 else f"{size} bytes that are not a zip archive (truncated, or another file)"
        raise UserError(f"{path}: not a readable torch checkpoint: {kind}")
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        names = {f"{c.__module__}.{c.__qualname__}" for c in (OptimConfig, GenerationConfig)} | set(former)
        try:
            unsafe = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in names]
        except Exception:  # an archive torch cannot read at all
            unsafe = []
        if not unsafe:
            reason = (str(e).strip().splitlines() or ["unreadable"])[-1]
            raise UserError(f"{path}: not a readable torch checkpoint ({reason})") from None
        raise UserError(
            f"{path}: holds pickled objects a bart-pretrain checkpoint never holds ({', '.join(unsafe)}); refusing to "
            "unpickle them (torch.load weights_only=True: they could run code). Allowed: tensors, plain Python "
            "containers, OptimConfig, GenerationConfig"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:  # a damaged archive, ...
        raise UserError(f"{path}: not a readable torch checkpoint ({(str(e).splitlines() or [''])[0]})") from None


@dataclass
class LoadedModel:
    """What :func:`load_model` found: the model, its tokenizer (None if none is known, see ``tokenizer_note``), the
    beam settings and source length it records (empty / None when it records none)."""

    model: Any
    tokenizer: Any
    generation: dict[str, Any]
    max_source_length: int | None
    tokenizer_path: str | None = None
    """Where the tokenizer was read from (for one a checkpoint carries: where its run read it)."""
    tokenizer_note: str = ""
    """Why there is no tokenizer, when there is none."""


def load_model(path: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None) -> LoadedModel:
    """A Lightning checkpoint written by our modules (hyper-parameters ``model_config``, weights under ``model.``, the
    tokenizer under :data:`TOKENIZER_KEY`) or a transformers BART directory, with what it records for generation.

    ``tokenizer_path`` supplies a tokenizer for a checkpoint that carries none; for one that does, it must be that
    same tokenizer (equal sha256), else ``ValueError``."""
    from bart_pretrain.model import Bart, BartConfig
    from bart_pretrain.tokenizer import Tokenizer

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    override = Tokenizer.from_file(tokenizer_path, "--tokenizer_path") if tokenizer_path is not None else None
    if path.is_dir() and not is_sharded_checkpoint(path):
        from bart_pretrain.hf import load_hf, recorded_settings

        model = load_hf(path)
        has_tok = (path / "tokenizer.json").exists() or (path / "vocab.json").exists()
        tokenizer = override or (Tokenizer.from_file(path) if has_tok else None)
        tok_path = str(tokenizer_path) if override else str(path) if has_tok else None
        note = "" if tokenizer is not None else f"{path} holds no tokenizer.json (nor vocab.json + merges.txt)"
        generation, max_source_length = recorded_settings(path)
        loaded = LoadedModel(model, tokenizer, generation, max_source_length, tok_path, note)
    else:
        ckpt = read_sharded_checkpoint(path) if path.is_dir() else read_checkpoint(path)
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if not isinstance(hparams, dict) or "model_config" not in hparams or "state_dict" not in ckpt:
            raise UserError(f"{path}: not a bart-pretrain checkpoint (no hyper_parameters.model_config / state_dict)")
        config = BartConfig.from_dict(dict(hparams["model_config"]))
        model = Bart(config)
        state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path}: weights do not fit the saved model_config: {e}") from e
        tokenizer, tok_path, note = _checkpoint_tokenizer(ckpt, path, override, tokenizer_path)
        generation = hparams.get("generation") or {}
        generation = dataclasses.asdict(generation) if dataclasses.is_dataclass(generation) else dict(generation)
        loaded = LoadedModel(model, tokenizer, generation, hparams.get("max_source_length"), tok_path, note)
    tok = loaded.tokenizer
    if tok is not None and tok.vocab_size != loaded.model.config.vocab_size:
        where = tokenizer_path or "its tokenizer"
        raise ValueError(f"{path}: tokenizer {where} has {tok.vocab_size} tokens, the model {model.config.vocab_size}")
    return loaded


def _checkpoint_tokenizer(ckpt: dict, path: Path, override, override_path) -> tuple[Any, str | None, str]:
    """(tokenizer or None, where it was read from, why there is none)."""
    from bart_pretrain.tokenizer import Tokenizer

    record = ckpt.get(TOKENIZER_KEY)
    if record:
        if override is not None:
            if override.fingerprint() != record["sha256"]:
                raise ValueError(
                    f"{path}: --tokenizer_path {override_path} is not the tokenizer this model was trained with "
                    f"(sha256 {override.fingerprint()[:12]}..., the checkpoint's {record['sha256'][:12]}..., read from "
                    f"{record['path'] or 'an unknown path'}); leave --tokenizer_path out: the checkpoint carries "
                    "its own"
                )
            return override, str(override_path), ""
        tokenizer = Tokenizer.from_str(record["json"])
        if tokenizer.fingerprint() != record["sha256"]:
            raise ValueError(f"{path}: the tokenizer stored in the checkpoint does not match its sha256 (corrupted?)")
        return tokenizer, record["path"] or None, ""
    if override is not None:
        return override, str(override_path), ""
    # Written before checkpoints carried their tokenizer: only a path, relative to where that run started.
    recorded = ckpt.get("hyper_parameters", {}).get("tokenizer_path")
    if not recorded:
        return None, None, f"{path} records no tokenizer"
    if not os.path.exists(recorded):
        return (
            None,
            None,
            (f"{path} carries no tokenizer and the one it records, {recorded!r}, is not at {Path(recorded).resolve()}"),
        )
    tokenizer = Tokenizer.from_file(recorded)
    if tokenizer.vocab_size != ckpt["hyper_parameters"]["model_config"].get("vocab_size"):
        n = ckpt["hyper_parameters"]["model_config"].get("vocab_size")
        raise ValueError(f"{path}: tokenizer {recorded} has {tokenizer.vocab_size} tokens, the model {n}")
    return tokenizer, recorded, ""


def load_bart(path: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None):
    """``(Bart, Tokenizer | None)`` from our checkpoint or a transformers BART directory (see :func:`load_model`)."""
    loaded = load_model(path, tokenizer_path)
    return loaded.model, loaded.tokenizer
