"""Where a relative input path is looked for, so that shipped configs work from any directory.

A relative path written in a config file (``-c FILE``) is looked for beside that file; for a config shipped under the
repository's ``configs/`` (written relative to the repository root), and for a shipped name such as
``configs/noise/bart_large.yaml`` in any config, in the repository; then in the working directory. A relative path
on the command line or from a default is looked for in the working directory, then (``configs/...`` names) in the
repository. The first place that has it wins and the value becomes that absolute path; when none has it, the value
is left as given and the code reading it reports :func:`where_looked`. Outputs (``--run_dir``) are never moved.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
"""The repository (or source tree) holding this package and the shipped ``configs/``."""


def _exists(path: Path) -> bool:
    return path.exists() or (glob.has_magic(str(path)) and bool(glob.glob(str(path))))


def candidates(value: str, config_file: Path | None = None) -> list[Path]:
    """The places a relative ``value`` is looked for, in order (see the module docstring)."""
    shipped_name = Path(value).parts[:1] == ("configs",)
    out = []
    if config_file is not None:
        out.append(config_file.parent / value)
        if shipped_name or config_file.resolve().is_relative_to(REPO / "configs"):
            out.append(REPO / value)
    out.append(Path.cwd() / value)
    if shipped_name and config_file is None:
        out.append(REPO / value)
    return list(dict.fromkeys(p.absolute() for p in out))


def resolve_input(value: Any, config_file: Path | None = None) -> Any:
    """``value`` (a path string, a list of them, or anything else) with each relative path that exists in one of its
    :func:`candidates` made that absolute path; other values (absolute, not found, a dataset name) unchanged."""
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_input(v, config_file) for v in value)
    if not isinstance(value, (str, os.PathLike)) or not str(value) or Path(value).is_absolute():
        return value
    for candidate in candidates(str(value), config_file):
        if _exists(candidate):
            return str(candidate)
    return value


def shipped(value: str | os.PathLike) -> Path:
    """``value`` as given if it exists (or is absolute), else the repository's copy of a shipped ``configs/...`` name
    if there is one, else ``value`` (the caller reports :func:`where_looked`)."""
    path = Path(value)
    if path.exists() or path.is_absolute():
        return path
    found = resolve_input(str(value))
    return Path(found)


def where_looked(value: str | os.PathLike, config_file: Path | None = None) -> str:
    """For an error message: ``looked for /abs/a, /abs/b``."""
    if Path(value).is_absolute():
        return f"looked for {value}"
    return "looked for " + ", ".join(str(p) for p in candidates(str(value), config_file))


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _origins(argv: Sequence[str], keys: Iterable[str]) -> dict[str, Path | None]:
    """For each of ``keys``: the ``-c`` file that sets it last in ``argv`` order, or None if the command line (or
    nothing, a default) does."""
    import yaml

    keys = set(keys)
    origin: dict[str, Path | None] = {}
    i = 0
    while i < len(argv):
        arg, i = argv[i], i + 1
        name, eq, value = arg.partition("=")
        if name in ("-c", "--config"):
            if not eq:
                value, i = (argv[i], i + 1) if i < len(argv) else ("", i)
            try:
                tree = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
            except (OSError, ValueError, yaml.YAMLError):  # a YAML string, not a file: as the command line
                tree = None
            if isinstance(tree, Mapping):
                for key in keys & set(_flatten(tree)):
                    origin[key] = Path(value).absolute()
        elif name.startswith("--") and name[2:] in keys:
            origin[name[2:]] = None
    return origin


def resolve_config_inputs(config: Any, keys: Iterable[str], argv: Sequence[str]) -> None:
    """Rewrite, in a LightningCLI ``config`` (a jsonargparse Namespace) parsed from ``argv``, each of ``keys`` (dotted
    input paths) by :func:`resolve_input`, relative to the ``-c`` file that set it last, else to the working
    directory (the command line or a default set it)."""
    origins = _origins(argv, keys)
    for key in keys:
        value = config.get(key)
        if value is not None:
            config[key] = resolve_input(value, origins.get(key))
