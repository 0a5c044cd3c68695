"""Noise recipes from YAML: ``load_noise("configs/noise/bart_large.yaml")`` -> :class:`noising.Pipeline`.

A recipe's top level is ``noises: [{class_path: ..., init_args: {...}}, ...]`` (see configs/noise/). The YAML
lives here so that ``noising`` stays numpy-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

import noising
from bart_pretrain.paths import REPO, shipped, where_looked

RECIPE_DIR = REPO / "configs" / "noise"


def load_noise(spec: str | Path | Sequence[Mapping] | Mapping) -> noising.Pipeline:
    """A pipeline from a recipe path, a bare recipe name (``bart_large``), a ``{noises: [...]}`` mapping or a list.
    A relative path not in the working directory may name a shipped recipe (``configs/noise/bart_large.yaml``)."""
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
    else:
        where = "noise spec"
    if isinstance(spec, Mapping):
        if set(spec) != {"noises"}:
            raise ValueError(f"{where}: the top level must be `noises: [...]`, got keys {sorted(spec)}")
        spec = spec["noises"]
    if spec is None:
        spec = []
    try:
        return noising.build_pipeline(spec)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from e
