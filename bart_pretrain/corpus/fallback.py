"""Local sources for when apt or the network is missing: the descriptions of the INSTALLED packages
(``/var/lib/dpkg/status``, long descriptions inline) and the docstrings of the Python standard library
(read with ``ast`` from the source files: nothing is imported, so no module's side effects run)."""

from __future__ import annotations

import ast
import inspect
import os
import sysconfig
from pathlib import Path

DPKG_STATUS = Path("/var/lib/dpkg/status")
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "turtledemo"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _clean_docstring(doc: str) -> str:
    """Paragraphs of a docstring without doctest blocks (``>>>`` lines and their output)."""
    paragraphs = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines = para.strip().splitlines()
        if not lines or any(line.lstrip().startswith(">>>") for line in lines):
            continue
        paragraphs.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(paragraphs)


def module_docstrings(path: Path) -> str:
    """The module, class and function docstrings of one source file, in source order, as paragraphs."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return ""
    docs = []
    for node in [tree, *ast.walk(tree)]:
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc and len(doc.split()) >= 5:
                docs.append(_clean_docstring(doc))
    seen, out = set(), []
    for d in docs:  # ast.walk visits the module node twice (as `tree` and as the walk's root)
        if d and d not in seen:
            seen.add(d)
            out.append(d)
    return "\n\n".join(out)


def stdlib_documents(root: Path | None = None, min_words: int = 20) -> list[dict[str, str]]:
    """One document per standard-library module with docstrings: ``{"id": "python-stdlib/<path>", "text"}``."""
    root = stdlib_dir() if root is None else root
    docs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = Path(dirpath) / name
            text = module_docstrings(path)
            if len(text.split()) >= min_words:
                docs.append({"id": f"python-stdlib/{path.relative_to(root).as_posix()}", "text": text})
    return sorted(docs, key=lambda d: d["id"])
