"""An ordered list of noises built from config specs, with a cheap output check around plug-ins.

``build_pipeline([{"class_path": "text_infilling", "init_args": {"ratio": 0.3}}, ...])``; class_path is a
registry name (see :mod:`noising.registry`) or an import path. Built-ins are trusted (their tests prove the
contract); any other noise runs on read-only views of its input and its output is checked.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from noising.base import Document, Noise, NoiseContext
from noising.registry import resolve


class Pipeline:
    """Applies ``noises`` in order to one document, all drawing from the sample's generator."""

    def __init__(self, noises: Iterable[Noise]):
        self.noises: tuple[Noise, ...] = tuple(noises)
        for i, noise in enumerate(self.noises):
            if not isinstance(noise, Noise):
                raise TypeError(f"noises[{i}]={noise!r}: not a noising.Noise instance")
        self._trusted = tuple(type(n).__module__.startswith("noising.") for n in self.noises)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        for noise, trusted in zip(self.noises, self._trusted, strict=True):
            doc = noise(doc, rng, ctx) if trusted else checked_call(noise, doc, rng, ctx)
        return doc

    def __len__(self) -> int:
        return len(self.noises)

    def __repr__(self) -> str:
        return f"Pipeline({list(self.noises)!r})"


def build_pipeline(specs: Sequence[Mapping | Noise]) -> Pipeline:
    """A pipeline from ``[{"class_path": ..., "init_args": {...}}, ...]`` (Noise instances pass through)."""
    if isinstance(specs, (str, bytes, Mapping)) or not isinstance(specs, Sequence):
        raise TypeError(f"noise specs must be a list of {{class_path, init_args}} mappings, got {type(specs).__name__}")
    return Pipeline(_build_one(i, spec) for i, spec in enumerate(specs))


def _build_one(i: int, spec) -> Noise:
    if isinstance(spec, Noise):
        return spec
    where = f"noises[{i}]"
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where}={spec!r}: must be a mapping with keys class_path and init_args")
    unknown = set(spec) - {"class_path", "init_args"}
    if unknown or "class_path" not in spec:
        raise ValueError(f"{where}: keys must be class_path (required) and init_args (optional); got {sorted(spec)}")
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise TypeError(f"{where}.init_args={init_args!r}: must be a mapping of parameter names to values")
    try:
        cls = resolve(spec["class_path"])
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from e
    params = _parameters(cls)
    bad = [k for k in init_args if k not in params]
    if bad:
        raise ValueError(
            f"{where}: {cls.__name__} has no parameter {', '.join(map(repr, bad))}; "
            f"its parameters are: {', '.join(params) or '(none)'}"
        )
    try:
        return cls(**init_args)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where} ({spec['class_path']}): {e}") from e


def _parameters(cls: type) -> list[str]:
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    sig = inspect.signature(cls)
    return [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def checked_call(noise: Noise, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
    """Run a plug-in on read-only views of ``doc`` and check what it returns; errors name the plug-in class."""
    name = f"{type(noise).__module__}.{type(noise).__qualname__}"
    view = Document(_read_only(doc.tokens), _read_only(doc.word_starts), _read_only(doc.sentence_starts))
    try:
        out = noise(view, rng, ctx)
    except ValueError as e:
        if "read-only" in str(e):
            raise ValueError(f"noise plug-in {name} modified its input document (return a new one): {e}") from e
        raise
    if not isinstance(out, Document):
        raise TypeError(f"noise plug-in {name} returned {type(out).__name__}, not a noising.Document")
    t = out.tokens
    if not isinstance(t, np.ndarray) or t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"noise plug-in {name} returned tokens of type {getattr(t, 'dtype', type(t))}; need 1-D int64")
    if len(t) < 2 or t[0] != ctx.bos_id or t[-1] != ctx.eos_id:
        raise ValueError(f"noise plug-in {name} dropped <s> (id {ctx.bos_id}) first or </s> (id {ctx.eos_id}) last")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= ctx.vocab_size:
        raise ValueError(f"noise plug-in {name} returned ids in [{lo}, {hi}], outside [0, {ctx.vocab_size})")
    if len(out.word_starts) != len(t):
        raise ValueError(f"noise plug-in {name} returned {len(out.word_starts)} word_starts for {len(t)} tokens")
    if len(t) > max(ctx.max_length, len(doc.tokens)):
        raise ValueError(f"noise plug-in {name} grew the document to {len(t)} tokens, past max_length")
    if len(out.sentence_starts) and (out.sentence_starts.min() < 1 or out.sentence_starts.max() >= len(t) - 1):
        raise ValueError(f"noise plug-in {name} returned sentence_starts outside [1, {len(t) - 1})")
    if not (t.flags.writeable and out.word_starts.flags.writeable and out.sentence_starts.flags.writeable):
        # It handed back our read-only views: give downstream code (collate, torch.from_numpy) writable arrays.
        out = Document(t.astype(np.int64), np.array(out.word_starts, dtype=bool), np.array(out.sentence_starts))
    elif t.dtype != np.int64:
        out = out.replace(tokens=t.astype(np.int64))
    return out
