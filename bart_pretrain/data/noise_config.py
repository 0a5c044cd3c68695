"""Noise recipes (``configs/noise/*.yaml``: ``noises: [{class_path: noising.TextInfilling, init_args: {...}}]``)
read by the same jsonargparse type as ``--data.noise`` (:class:`noising.Pipeline`): ``load_noise(path)`` for the
commands that take a recipe file, :func:`explain` to add what is allowed to the parser's messages about a noise,
:func:`recipe_of` for the plain record a checkpoint keeps. Here rather than in ``noising``, which stays numpy-only.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import noising
from bart_pretrain.paths import REPO, shipped, where_looked

RECIPE_DIR = REPO / "configs" / "noise"
DEFAULT_RECIPE = "configs/noise/bart_large.yaml"
"""The recipe of ``--data.noise`` unless a config names another: BART-large's."""


@functools.cache
def _parser():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False, default_env=False)
    parser.add_class_arguments(noising.Pipeline)
    return parser


def load_noise(spec: str | Path | Mapping | Sequence[Mapping] | noising.Pipeline) -> noising.Pipeline:
    """The pipeline of a recipe: a recipe file, a shipped recipe's name (``bart_large``), a ``{noises: [...]}``
    mapping or the list of noises itself. A relative path not in the working directory may name a shipped recipe
    (``configs/noise/bart_large.yaml``). Errors are one-line ``ValueError``s naming the file."""
    if isinstance(spec, noising.Pipeline):
        return spec
    noising.registry.installed()  # installed plug-ins: known by their class names, as on the command line
    where = "noise recipe"
    if isinstance(spec, (str, Path)):
        path = shipped(spec)  # configs/noise/x.yaml works from any directory
        if not path.exists() and not path.suffix and (RECIPE_DIR / f"{path}.yaml").exists():
            path = RECIPE_DIR / f"{path}.yaml"
        if not path.exists():
            names = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
            raise FileNotFoundError(
                f"noise recipe {str(spec)!r} not found ({where_looked(spec)}); shipped recipes: {', '.join(names)}"
            )
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ValueError(f"noise recipe {path}: not valid YAML: {e}") from e
        where = str(path)
    if spec is None or (isinstance(spec, Sequence) and not isinstance(spec, str)):
        spec = {"noises": list(spec or [])}
    if not isinstance(spec, Mapping) or set(spec) != {"noises"}:
        got = f"keys {sorted(spec)}" if isinstance(spec, Mapping) else repr(spec)
        raise ValueError(f"{where}: the top level must be `noises: [...]`, got {got}")
    from jsonargparse import ArgumentError

    parser = _parser()
    try:
        config = parser.parse_object({"noises": spec["noises"] or []})
    except ArgumentError as e:
        raise ValueError(f"{where}: {one_line(explain(str(e)))}") from e
    try:
        return noising.Pipeline(**vars(parser.instantiate(config)))
    except (TypeError, ValueError) as e:  # a value out of range: the noise's own check, naming Class.field
        raise type(e)(f"{where}: {one_line(str(e))}") from e


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def known() -> dict[str, type[noising.Noise] | type[noising.Objective]]:
    """Import path -> class of every noise (or objective) a config can name by its class name: the built-ins,
    installed plug-ins."""
    classes = [*noising.BUILTINS, *noising.registry.installed().values()]
    return {class_path(c): c for c in classes}


def class_path(cls: type) -> str:
    """How a recipe names ``cls``: ``noising.TextInfilling`` for a built-in, else ``module.Class``."""
    return f"noising.{cls.__name__}" if cls in noising.BUILTINS else f"{cls.__module__}.{cls.__qualname__}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_IRREGULAR_FORMER_NAMES = {
    "t5_spans": noising.T5SpanCorruption,
    "ul2": noising.UL2Mixture,
    "prefix_lm": noising.PrefixLM,
}
"""Former short names that are not their class name in snake_case (``text_infilling``, ``gap_sentences`` are)."""


def explain(message: str) -> str:
    """``message`` (the config parser's, about any key) with, where it is about a noise, what is allowed: for a name
    that is no class, the new spelling of a former short name (``text_infilling``: ``noising.TextInfilling``) or the
    known class names; for a parameter a noise lacks, its parameters; for a module that is not importable, how to
    make it so."""
    if "noises" not in message:
        return message
    name = re.search(r"Expected a dot import path string: (\S+)", message)
    if name:
        name = name.group(1)
        classes = known()
        renamed = {_snake(c.__name__): p for p, c in classes.items()}
        renamed.update({old: class_path(c) for old, c in _IRREGULAR_FORMER_NAMES.items()})
        renamed.update({ep: class_path(c) for ep, c in noising.registry.installed().items()})
        if name in renamed:
            return f"{message}; class_path: {name} is the former short name of {renamed[name]}: write that instead"
        names = ", ".join(sorted({c.__name__ for c in classes.values()}))
        return (
            f"{message}; unknown noise {name!r}: name a noise by its import path (my_pkg.MyNoise) or by the class "
            f"name of a built-in or installed one: {names}"
        )
    option = re.search(r"class_path '([\w.]+)':\s+Option '(\w+)' is not accepted", message)
    if option:
        try:
            module, _, attr = option.group(1).rpartition(".")
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return message
        if cls in (noising.Corruption, noising.Noise, noising.Objective):  # not class_path/init_args: a base class
            return f"{message}; a noise is written {{class_path: <import path or class name>, init_args: {{...}}}}"
        params = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
        return f"{message}; {cls.__name__}'s parameters: {', '.join(params) or '(none)'}"
    if re.search(r"does not correspond to a subclass of Corruption", message):
        return f"{message}; a noise subclasses noising.Noise, an objective (last in a recipe) noising.Objective"
    if re.search(r"class_path '[\w.]+':\s+No module named", message):
        return f"{message}; a module of your own must be importable: put its directory on PYTHONPATH"
    return message


def recipe_of(pipeline: noising.Pipeline) -> list[dict[str, Any]]:
    """``pipeline`` as a recipe's ``noises`` (plain data: what a checkpoint's hyper-parameters keep)."""
    out = []
    for noise in pipeline.noises:
        fields = dataclasses.fields(noise) if dataclasses.is_dataclass(noise) else ()
        init_args = {f.name: getattr(noise, f.name) for f in fields if f.init}
        out.append({"class_path": class_path(type(noise)), "init_args": init_args})
    return out
