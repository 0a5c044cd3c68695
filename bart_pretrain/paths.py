"""Input paths: :class:`InputPath` marks a command's input path, which the parser makes absolute as it reads it
(:func:`resolve_here`): a relative path written in a config file is relative to that file's directory, one on the
command line or from a default to the working directory. Outputs (``--run_dir``) are plain ``str``, relative to the
working directory. :func:`shipped` and :func:`resolve_input` find the repository's own ``configs/`` files.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
"""The repository (or source tree) holding this package and the shipped ``configs/``."""


class InputPath(str):
    """The annotation of an input path (a file, directory or glob the command reads). The command parsers register it
    with jsonargparse (``bart_pretrain.commands.parsing``), whose deserializer is :func:`resolve_here`; the value a
    class receives is a plain absolute ``str``, and Python callers may pass any ``str`` (relative: to the working
    directory)."""


def resolve_here(value: str | os.PathLike) -> str:
    """``value`` made absolute against the current directory: the parser reads a config file from that file's
    directory, and the command line from the working directory. A bare name (no ``/``, no ``.``, no glob) that is
    not a file there stays as given: a ``datasets`` name such as ``wikitext``."""
    value = os.path.expanduser(os.fspath(value))
    if os.path.isabs(value):
        return value
    absolute = os.path.abspath(value)
    bare_name = value != "" and not any(c in value for c in "/.*?[")
    return value if bare_name and not _exists(Path(absolute)) else absolute


def _exists(path: Path) -> bool:
    return path.exists() or (glob.has_magic(str(path)) and bool(glob.glob(str(path))))


def candidates(value: str, config_file: Path | None = None) -> list[Path]:
    """Where :func:`resolve_input` looks for a relative ``value``, in order: beside ``config_file``; in the repository
    for a shipped ``configs/...`` name or a config under ``configs/``; in the working directory."""
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
