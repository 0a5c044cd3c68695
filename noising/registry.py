"""Noise names: the built-ins (snake_case of the paper's names), installed plug-ins, and import paths.

Installed packages declare plug-ins under the entry-point group ``bart_pretrain.noising``
(``[project.entry-points."bart_pretrain.noising"] word_shuffle = "my_pkg.noise:WordShuffle"``); code can also
call :func:`register`. The registry is strict: two sources claiming one name is an error naming both.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from noising.base import Noise

ENTRY_POINT_GROUP = "bart_pretrain.noising"

BUILTINS: dict[str, str] = {
    "token_masking": "noising.token_masking:TokenMasking",
    "token_deletion": "noising.token_deletion:TokenDeletion",
    "text_infilling": "noising.text_infilling:TextInfilling",
    "sentence_permutation": "noising.sentence_permutation:SentencePermutation",
    "document_rotation": "noising.document_rotation:DocumentRotation",
    "random_insertion": "noising.random_insertion:RandomInsertion",
}

_registered: dict[str, type] = {}  # names added at run time through register()


def register(name: str, cls: type | None = None):
    """Register ``cls`` under ``name`` (usable as a decorator: ``@register("word_shuffle")``); duplicates fail."""

    def add(cls: type) -> type:
        _check_noise_class(cls, f"register({name!r})")
        sources = available()
        if name in sources:
            raise ValueError(
                f"noise name {name!r} is already taken by {sources[name]}; cannot also register "
                f"{cls.__module__}.{cls.__qualname__} under it"
            )
        _registered[name] = cls
        return cls

    return add if cls is None else add(cls)


def unregister(name: str) -> None:
    """Remove a name added by :func:`register` (tests, notebooks); built-ins and entry points stay."""
    _registered.pop(name, None)


def available() -> dict[str, str]:
    """Every usable short name -> where it comes from. Raises ``ValueError`` if two sources share a name."""
    sources = {name: f"built-in {path}" for name, path in BUILTINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", None) or "an unknown distribution"
        origin = f"entry point {ep.name} = {ep.value} (package {dist})"
        if ep.name in sources:
            if sources[ep.name] == origin:  # one distribution seen twice on sys.path
                continue
            raise ValueError(
                f"noise name {ep.name!r} is defined twice: by {sources[ep.name]} and by {origin}; "
                f"uninstall one of them or rename its entry point in group {ENTRY_POINT_GROUP!r}"
            )
        sources[ep.name] = origin
    for name, cls in _registered.items():
        sources.setdefault(name, f"register() of {cls.__module__}.{cls.__qualname__}")
    return sources


def resolve(class_path: str) -> type[Noise]:
    """The noise class named by a short name or an import path (``pkg.mod.Class`` or ``pkg.mod:Class``)."""
    if not isinstance(class_path, str) or not class_path:
        raise TypeError(f"class_path={class_path!r}: must be a noise name or an import path string")
    if "." not in class_path and ":" not in class_path:
        sources = available()
        if class_path not in sources:
            raise ValueError(
                f"unknown noise {class_path!r}; available: {', '.join(sorted(sources))} "
                "(or give an import path such as my_pkg.module.MyNoise)"
            )
        if class_path in _registered:
            return _registered[class_path]
        if class_path in BUILTINS:
            target = BUILTINS[class_path]
        else:
            target = next(iter(entry_points(group=ENTRY_POINT_GROUP, name=class_path))).value
        cls = _import(target, class_path)
    else:
        cls = _import(class_path, class_path)
    _check_noise_class(cls, class_path)
    return cls


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
    if not (isinstance(cls, type) and issubclass(cls, Noise)):
        raise TypeError(
            f"noise {shown!r} is {cls!r}, which is not a subclass of noising.Noise; "
            "a noise is a (frozen dataclass) subclass of noising.Noise implementing __call__(doc, rng, ctx)"
        )
