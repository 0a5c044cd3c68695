"""pyproject.toml declares what the code imports, and the code imports what pyproject.toml declares."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PACKAGES = [ROOT / "bart_pretrain", ROOT / "noising"]
# Declared but never imported by our code, on purpose:
NOT_IMPORTED = {
    "tensorboard": "TensorBoardLogger (pretrain.py) writes through it; Lightning imports it, we never do",
    "ruff": "a command-line tool (make lint)",
    "pytest-xdist": "a pytest plug-in: `make test` runs the suite with `-n auto` (one worker per core)",
}


def normalized(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()


def declared(group: str | None = None) -> set[str]:
    specs = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return {normalized(s) for s in specs}


LOCAL = {"bart_pretrain", "noising"} | {p.stem for p in (ROOT / "tests").rglob("*.py")}
LOCAL |= {p.parent.name for p in (ROOT / "tests").rglob("__init__.py")}
LOCAL |= {"__main__"}  # the running program's module (tests/forked.py sets its spec), not a distribution


def imported(roots: list[Path], module_level_only: bool = False) -> dict[str, set[str]]:
    """Distribution -> files importing it (third-party imports only); ``module_level_only``: imports at the top of
    a module, not the lazy ones inside functions."""
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            nodes = tree.body if module_level_only else ast.walk(tree)
            for node in nodes:
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {n.split(".")[0] for n in names} - LOCAL - set(sys.stdlib_module_names):
                    for dist in owners.get(top, [f"<{top}: no installed distribution>"]):
                        found.setdefault(normalized(dist), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_declared_dependency_is_imported():
    unused = declared() - set(imported(PACKAGES)) - set(NOT_IMPORTED)
    assert not unused, f"declared in dependencies, imported by no module of bart_pretrain/ or noising/: {unused}"
    dev_unused = declared("dev") - set(imported([*PACKAGES, ROOT / "tests"])) - set(NOT_IMPORTED)
    assert not dev_unused, f"declared in the dev extra, imported nowhere: {dev_unused}"


def test_every_third_party_import_is_declared():
    everything = declared() | declared("dev")
    top = imported(PACKAGES, module_level_only=True)
    assert not set(top) - declared(), {d: top[d] for d in set(top) - declared()}  # importing the package needs them
    lazy = imported(PACKAGES)  # inside functions: an optional extra is enough (transformers in hf.to_transformers)
    assert not set(lazy) - everything, {d: lazy[d] for d in set(lazy) - everything}
    tests = imported([ROOT / "tests"])
    assert not set(tests) - everything, {d: tests[d] for d in set(tests) - everything}
