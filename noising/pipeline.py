"""An ordered list of noises, optionally ending in an objective (a recipe, built by the config parser or in code),
with a cheap output check around plug-ins.

``Pipeline([TextInfilling(ratio=0.3), SentencePermutation()])``. Built-ins (:data:`noising.BUILTINS`) are trusted
(their tests prove the contract); any other noise runs on read-only views of its input, its output is checked, and so
are the global random generators (a plug-in must draw from its rng argument only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from noising.base import Corruption, Document, Example, Noise, NoiseContext, Objective, sample_rng
from noising.global_random import changed, global_random_state
from noising.registry import BUILTINS


@dataclass(frozen=True, repr=False)
class Pipeline:
    """A recipe: ``noises`` applied in order to one document, all drawing from the sample's generator; an
    :class:`Objective` given last then makes the (source, target) pair (:meth:`example`). The type of
    ``--data.noise``; a recipe file, ``configs/noise/*.yaml``, holds its ``noises``."""

    noises: list[Corruption] = field(default_factory=list)
    """The noises, applied in order, and optionally last an objective, each ``{class_path: noising.TextInfilling,
    init_args: {ratio: 0.3}}``: an import path (a plug-in's too: ``my_pkg.WordShuffle``) or the class name of a
    built-in or installed noise or objective (``noising.T5SpanCorruption``)."""

    def __post_init__(self) -> None:
        # A copy, so the caller's list cannot change it; a list, not a tuple: the config parser prints a list's noises.
        steps = list(self.noises)
        object.__setattr__(self, "noises", steps)
        for i, step in enumerate(steps):
            if isinstance(step, Objective) and i != len(steps) - 1:
                raise TypeError(
                    f"noises[{i}]={step!r}: an objective (it defines the target) must come last in a recipe, after "
                    "the noises"
                )
            if not isinstance(step, (Noise, Objective)):
                raise TypeError(f"noises[{i}]={step!r}: not a noising.Noise or noising.Objective instance")
        objective = steps[-1] if steps and isinstance(steps[-1], Objective) else None
        trusted = tuple(type(s) in BUILTINS for s in steps)
        object.__setattr__(self, "objective", objective)
        object.__setattr__(self, "trusted", trusted)
        object.__setattr__(self, "objective_trusted", objective is not None and trusted[-1])
        object.__setattr__(self, "plugins", tuple(_name(s) for s, t in zip(steps, trusted, strict=True) if not t))
        corrupting = len(steps) - (objective is not None)
        object.__setattr__(self, "_corruptions", tuple(zip(steps[:corrupting], trusted[:corrupting], strict=True)))

    objective: Objective | None = field(init=False, compare=False)
    """The last step when it defines the target; None: the target is the original document."""
    trusted: tuple[bool, ...] = field(init=False, compare=False)
    """Per step (noise or objective): a built-in (its tests prove the contract) rather than a plug-in (checked on
    every call)."""
    objective_trusted: bool = field(init=False, compare=False)
    """The objective is a built-in (False without one)."""
    plugins: tuple[str, ...] = field(init=False, compare=False)
    """The plug-ins' names (``module.Class``), as errors name them."""
    _corruptions: tuple[tuple[Noise, bool], ...] = field(init=False, compare=False)
    """(noise, trusted) of the steps before the objective."""

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        if self.objective is not None:
            raise TypeError(
                f"this recipe ends with the objective {_name(self.objective)}, which defines the target: "
                "call .example(doc, rng, ctx) for the (source, target) pair"
            )
        return self.corrupt(doc, rng, ctx)

    def corrupt(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
        """The document after the noises (not the objective)."""
        for noise, trusted in self._corruptions:
            doc = noise(doc, rng, ctx) if trusted else checked_call(noise, doc, rng, ctx)
        return doc

    def example(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
        """(source, target) of one document: the noises, then the objective on what they made; without an objective,
        the target is the original document."""
        noised = self.corrupt(doc, rng, ctx)
        if self.objective is None:
            return Example(noised.tokens, doc.tokens)
        if self.objective_trusted:
            return self.objective(noised, rng, ctx)
        return checked_objective_call(self.objective, noised, rng, ctx)

    def __len__(self) -> int:
        return len(self.noises)

    def __repr__(self) -> str:  # what a checkpoint's data plan records: unchanged, so older checkpoints resume
        return f"Pipeline({list(self.noises)!r})"


def _name(noise: Noise | Objective) -> str:
    return f"{type(noise).__module__}.{type(noise).__qualname__}"


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


class PluginContractError(ValueError):
    """A plug-in noise broke the noising contract (see :mod:`noising.base`); the message names the class and the
    rule."""


def _broke(name: str, what: str, rule: str) -> PluginContractError:
    return PluginContractError(f"noise plug-in {name} {what}; the rule: {rule}")


RNG_RULE = (
    "draw randomness only from the rng argument (no global numpy.random, random, torch or time), so that a sample "
    "is a pure function of (seed, epoch, index)"
)
"""The rule a plug-in drawing from a global generator breaks, as :class:`PluginContractError` messages state it."""


def _guarded_call(plugin, doc: Document, rng: np.random.Generator, ctx: NoiseContext, modify_rule: str):
    """``plugin(doc, rng, ctx)`` on read-only views of ``doc``; a :class:`PluginContractError` if it wrote to them
    (``modify_rule``) or drew from Python's or numpy's global random generator."""
    name = _name(plugin)
    view = Document(_read_only(doc.tokens), _read_only(doc.word_starts), _read_only(doc.sentence_starts))
    before = global_random_state()
    try:
        out = plugin(view, rng, ctx)
    except ValueError as e:
        if "read-only" in str(e):
            raise _broke(name, f"modified its input document ({e})", modify_rule) from e
        raise
    after = global_random_state()
    if after != before and changed(before, after):
        drawn = " and ".join(changed(before, after))
        raise _broke(name, f"drew from {drawn} (its state changed during the call)", RNG_RULE)
    return out


def checked_call(noise: Noise, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Document:
    """Run a plug-in on read-only views of ``doc`` and check what it returns, and that it drew nothing from Python's or
    numpy's global random generator (:mod:`noising.global_random`: their states are compared before and after, so a
    plug-in that draws on one call in a thousand fails on that call); a violation is a :class:`PluginContractError`
    naming the plug-in class and the rule it broke."""
    name = _name(noise)
    out = _guarded_call(noise, doc, rng, ctx, "return a new Document, never modify the input")
    if not isinstance(out, Document):
        raise _broke(name, f"returned a {type(out).__name__}, not a noising.Document", "return a noising.Document")
    t = out.tokens
    if not isinstance(t, np.ndarray) or t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        got = getattr(t, "dtype", type(t).__name__)
        raise _broke(name, f"returned tokens of type {got}", "tokens are a 1-D integer array (int64)")
    if len(t) < 2 or t[0] != ctx.bos_id or t[-1] != ctx.eos_id:
        what = f"dropped <s> (id {ctx.bos_id}) first or </s> (id {ctx.eos_id}) last"
        raise _broke(name, what, "<s> stays first and </s> last")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= ctx.vocab_size:
        what = f"returned ids in [{lo}, {hi}], outside [0, {ctx.vocab_size})"
        raise _broke(name, what, "ids stay inside the vocabulary (ctx.vocab_size)")
    if len(out.word_starts) != len(t):
        what = f"returned {len(out.word_starts)} word_starts for {len(t)} tokens"
        raise _broke(name, what, "one word_starts flag per token")
    if len(t) > max(ctx.max_length, len(doc.tokens)):
        what = f"grew the document to {len(t)} tokens, past max_length"
        raise _broke(name, what, f"never grow a document past ctx.max_length={ctx.max_length}")
    if len(out.sentence_starts) and (out.sentence_starts.min() < 1 or out.sentence_starts.max() >= len(t) - 1):
        what = f"returned sentence_starts outside [1, {len(t) - 1})"
        raise _broke(name, what, "sentences start inside the content, after <s> and before </s>")
    if not (t.flags.writeable and out.word_starts.flags.writeable and out.sentence_starts.flags.writeable):
        # It handed back our read-only views: give downstream code (collate, torch.from_numpy) writable arrays.
        out = Document(t.astype(np.int64), np.array(out.word_starts, dtype=bool), np.array(out.sentence_starts))
    elif t.dtype != np.int64:
        out = out.replace(tokens=t.astype(np.int64))
    return out


def probe_document(ctx: NoiseContext) -> Document:
    """A valid document of non-special ids (up to 40 content tokens, words of 1-2 tokens, 3 sentences) for start-up
    checks."""
    n = min(40, ctx.max_length - 2)
    ids = np.setdiff1d(np.arange(ctx.vocab_size), ctx.special_ids)
    content = ids[(np.arange(n) * 7919) % len(ids)] if len(ids) else np.full(n, ctx.unk_id)
    tokens = np.concatenate(([ctx.bos_id], content, [ctx.eos_id])).astype(np.int64)
    word_starts = np.zeros(n + 2, dtype=bool)
    word_starts[1 : n + 1] = np.arange(n) % 3 != 1  # some two-token words
    sentence_starts = sorted({1, *(1 + k for k in (3 * (n // 9), 6 * (n // 9)) if 0 < k < n)}) if n else []
    return Document(tokens, word_starts, np.asarray(sentence_starts, dtype=np.int64))


def check_plugins(pipeline: Pipeline, ctx: NoiseContext, seeds: Sequence[int] = range(4)) -> None:
    """Start-up check of every plug-in of ``pipeline`` (built-ins are proven by their tests): run it twice on one
    document with each seed through :func:`checked_call` (which refuses any draw from a global generator) and refuse
    it if the two outputs differ, i.e. it draws from another random source than the generator it is given (the
    clock, the OS, a generator of its own), which would make a batch depend on the worker, the rank and the run
    instead of (seed, epoch, index). A plug-in objective is checked the same way (:func:`checked_objective_call`)."""
    doc = probe_document(ctx)
    for noise, trusted in pipeline._corruptions:
        if trusted:
            continue
        name = _name(noise)
        for seed in seeds:
            first = checked_call(noise, doc, sample_rng(seed, 0, 0), ctx)
            again = checked_call(noise, doc, sample_rng(seed, 0, 0), ctx)
            for part in ("tokens", "word_starts", "sentence_starts"):
                if not np.array_equal(getattr(first, part), getattr(again, part)):
                    raise _broke(
                        name, f"gave two different outputs ({part}) for one document and one seed ({seed})", RNG_RULE
                    )
    objective = pipeline.objective
    if objective is not None and not pipeline.objective_trusted:
        for seed in seeds:
            first = checked_objective_call(objective, doc, sample_rng(seed, 0, 0), ctx)
            again = checked_objective_call(objective, doc, sample_rng(seed, 0, 0), ctx)
            for part in ("source", "target"):
                if not np.array_equal(getattr(first, part), getattr(again, part)):
                    what = f"gave two different outputs ({part}) for one document and one seed ({seed})"
                    raise _broke(_name(objective), what, RNG_RULE)


def checked_objective_call(objective: Objective, doc: Document, rng: np.random.Generator, ctx: NoiseContext) -> Example:
    """:func:`checked_call` for a plug-in objective: read-only input, no draw from a global generator, and an
    :class:`Example` whose source and target are 1-D integer arrays of ids in ``[0, vocab_size)``, ``<s>`` (or, in
    the source, a mode token) first and ``</s>`` last, no longer than ``ctx.max_length`` (or the input), adding no
    ``<s>``, ``</s>``, ``<pad>`` or ``<unk>`` the input did not hold, and mode tokens only first in the source."""
    name = _name(objective)
    out = _guarded_call(objective, doc, rng, ctx, "return new arrays, never modify the input")
    if not isinstance(out, Example):
        raise _broke(name, f"returned a {type(out).__name__}, not a noising.Example", "return a noising.Example")
    arrays = {}
    for part in ("source", "target"):
        a = getattr(out, part)
        if not isinstance(a, np.ndarray) or a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            got = getattr(a, "dtype", type(a).__name__)
            raise _broke(name, f"returned a {part} of type {got}", f"the {part} is a 1-D integer array (int64)")
        firsts = (ctx.bos_id, *ctx.mode_ids) if part == "source" else (ctx.bos_id,)
        if len(a) < 2 or a[0] not in firsts or a[-1] != ctx.eos_id:
            what = f"returned a {part} without <s> (id {ctx.bos_id}) first or </s> (id {ctx.eos_id}) last"
            rule = "<s> (or, in the source, a mode token) first and </s> last"
            raise _broke(name, what, rule)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= ctx.vocab_size:
            what = f"returned {part} ids in [{lo}, {hi}], outside [0, {ctx.vocab_size})"
            raise _broke(name, what, "ids stay inside the vocabulary (ctx.vocab_size)")
        if len(a) > max(ctx.max_length, len(doc.tokens)):
            what = f"returned a {part} of {len(a)} tokens, past max_length"
            raise _broke(name, what, f"source and target never longer than ctx.max_length={ctx.max_length}")
        inside, given = a[1:-1], doc.tokens[1:-1]
        for special in (ctx.bos_id, ctx.eos_id, ctx.pad_id, ctx.unk_id, *ctx.mode_ids):
            added = int(np.count_nonzero(inside == special)) - int(np.count_nonzero(given == special))
            if added > 0:
                what = f"put {added} special id {special} inside its {part} that the input did not hold"
                rule = "add only <mask>, <mask_sentence>, sentinels and (first in the source) a mode token"
                raise _broke(name, what, rule)
        arrays[part] = a if a.flags.writeable and a.dtype == np.int64 else np.array(a, dtype=np.int64)
    return Example(arrays["source"], arrays["target"])
