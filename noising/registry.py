"""Noise names: the built-ins (snake_case of the paper's names), installed plug-ins, and import paths.

Installed packages declare plug-ins under the entry-point group ``bart_pretrain.noising``
(``[project.entry-points."bart_pretrain.noising"] word_shuffle = "my_pkg.noise:WordShuffle"``); code can also
call :func:`register`. The registry is strict: two sources claiming one name make that name an error naming both
(other names stay usable).
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

from noising.base import Noise, Objective

ENTRY_POINT_GROUP = "bart_pretrain.noising"

BUILTINS: dict[str, str] = {
    "token_masking": "noising.token_masking:TokenMasking",
    "token_deletion": "noising.token_deletion:TokenDeletion",
    "text_infilling": "noising.text_infilling:TextInfilling",
    "sentence_permutation": "noising.sentence_permutation:SentencePermutation",
    "document_rotation": "noising.document_rotation:DocumentRotation",
    "random_insertion": "noising.random_insertion:RandomInsertion",
    "t5_spans": "noising.t5_spans:T5SpanCorruption",
    "gap_sentences": "noising.gap_sentences:GapSentences",
    "ul2": "noising.ul2:UL2Mixture",
    "prefix_lm": "noising.prefix_lm:PrefixLM",
}

_registered: dict[str, type] = {}  # names added at run time through register()


def register(name: str, cls: type | None = None):
    """Register ``cls`` under ``name`` (usable as a decorator: ``@register("word_shuffle")``); duplicates fail."""

    def add(cls: type) -> type:
        _check_noise_class(cls, f"register({name!r})")
        sources, clashing = _sources()
        taken = sources.get(name) or " and by ".join(clashing.get(name, []))
        if taken:
            raise ValueError(
                f"noise name {name!r} is already taken by {taken}; cannot also register "
                f"{cls.__module__}.{cls.__qualname__} under it"
            )
        _registered[name] = cls
        return cls

    return add if cls is None else add(cls)


def unregister(name: str) -> None:
    """Remove a name added by :func:`register` (tests, notebooks); built-ins and entry points stay."""
    _registered.pop(name, None)


def _sources() -> tuple[dict[str, str], dict[str, list[str]]]:
    """(usable short name -> where it comes from, name claimed by two or more sources -> those sources)."""
    sources = {name: f"built-in {path}" for name, path in BUILTINS.items()}
    clashing: dict[str, list[str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", None) or "an unknown distribution"
        origin = f"entry point {ep.name} = {ep.value} (package {dist})"
        if ep.name in clashing:
            if origin not in clashing[ep.name]:
                clashing[ep.name].append(origin)
        elif ep.name in sources:
            if sources[ep.name] != origin:  # the same distribution seen twice on sys.path is no clash
                clashing[ep.name] = [sources.pop(ep.name), origin]
        else:
            sources[ep.name] = origin
    for name, cls in _registered.items():
        sources.setdefault(name, f"register() of {cls.__module__}.{cls.__qualname__}")
    return sources, clashing


def available() -> dict[str, str]:
    """Every usable short name -> where it comes from. A name two sources claim is not usable (:func:`clashes`);
    only that name fails, when used."""
    return _sources()[0]


def clashes() -> dict[str, list[str]]:
    """Short names claimed by two or more sources (built-in, installed packages) -> those sources."""
    return _sources()[1]


def resolve(class_path: str) -> type[Noise] | type[Objective]:
    """The noise class named by a short name or an import path (``pkg.mod.Class`` or ``pkg.mod:Class``). An import
    path is looked up with the working directory on ``sys.path`` (last), as ``python -m`` users expect."""
    if not isinstance(class_path, str) or not class_path:
        raise TypeError(f"class_path={class_path!r}: must be a noise name or an import path string")
    if "." not in class_path and ":" not in class_path:
        sources, clashing = _sources()
        if class_path in clashing:
            raise ValueError(
                f"noise name {class_path!r} is defined twice: by {' and by '.join(clashing[class_path])}; uninstall "
                f"one of them, rename its entry point in group {ENTRY_POINT_GROUP!r}, or name the class by its "
                "import path"
            )
        if class_path not in sources:
            unusable = f"; claimed twice, so unusable: {', '.join(sorted(clashing))}" if clashing else ""
            raise ValueError(
                f"unknown noise {class_path!r}; available: {', '.join(sorted(sources))} "
                f"(or give an import path such as my_pkg.module.MyNoise){unusable}"
            )
        if class_path in _registered:
            return _registered[class_path]
        if class_path in BUILTINS:
            target = BUILTINS[class_path]
        else:
            target = next(iter(entry_points(group=ENTRY_POINT_GROUP, name=class_path))).value
        cls = _import(target, class_path)
    else:
        _working_directory_on_path()
        cls = _import(class_path, class_path)
    _check_noise_class(cls, class_path)
    return cls


def _working_directory_on_path() -> None:
    # Appended, not prepended: an installed package of the same name as a file here still wins.
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)


def _import(target: str, shown: str):
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"noise {shown!r}: cannot import module {module_name!r}: {e}") from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"noise {shown!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _check_noise_class(cls, shown: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, (Noise, Objective))):
        raise TypeError(
            f"noise {shown!r} is {cls!r}, which is not a subclass of noising.Noise or noising.Objective; "
            "a noise is a (frozen dataclass) subclass of noising.Noise implementing __call__(doc, rng, ctx), an "
            "objective one of noising.Objective"
        )
