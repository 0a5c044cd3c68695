"""The `bart-pretrain ablate` config: recipes (shipped, the user's own, plug-ins) x seeds at an equal budget, read
and checked in one pass before any work, each error one line naming the field, the value and what is allowed; and the
BART paper's Table 1 values the shipped recipes are ranked against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bart_pretrain.paths import REPO, resolve_input, where_looked

PAPER_TABLE1: dict[str, tuple[str, float]] = {
    "bart_large": ("Text Infilling + Sentence Shuffling", 5.41),
    "text_infilling": ("Text Infilling", 5.83),
    "token_deletion": ("Token Deletion", 5.87),
    "token_masking": ("Token Masking", 6.10),
    "sentence_permutation": ("Sentence Shuffling", 7.89),
    "document_rotation": ("Document Rotation", 10.59),
}
"""Shipped recipe (configs/noise/<name>.yaml) -> (its row in the BART paper's Table 1, the CNN/DM perplexity of that
base-size model fine-tuned for summarization). Lower is better."""

PAPER_SOURCE = "BART paper (Lewis et al. 2020), Table 1: CNN/DM perplexity of base-size models, lower is better"

FIELDS = {
    "pretrain_config": "the base `bart-pretrain pretrain` config every cell starts from",
    "finetune_config": "the base `bart-pretrain finetune` config every cell's fine-tune starts from",
    "recipes": "noise recipes: a path (configs/noise/x.yaml, your own YAML) or {name: ..., path: ...}",
    "seeds": "a list of distinct integer seeds; cells = recipes x seeds",
    "pretrain_steps": "optimizer steps of every pretraining (the equal budget)",
    "finetune_steps": "optimizer steps of every fine-tune (the equal budget)",
    "out_dir": "where the cells and the results go",
    "pretrain_overrides": "dotted overrides for every pretraining, e.g. {data.max_tokens: 2048}",
    "finetune_overrides": "dotted overrides for every fine-tune, e.g. {data.test_subset: 300}",
}
REQUIRED = ("pretrain_config", "finetune_config", "recipes", "seeds", "pretrain_steps", "finetune_steps", "out_dir")

# Overrides the harness sets itself (the recipe, seed, budget and where each stage writes): a user value would break
# the equal-budget comparison or the resume logic.
RESERVED_PRETRAIN = ("run_dir", "data.noise", "seed_everything", "data.seed", "trainer.max_steps", "trainer.max_time",
                     "ckpt_path", "report", "trainer.logger")  # fmt: skip
RESERVED_FINETUNE = ("model.init_from", "trainer.default_root_dir", "seed_everything", "trainer.max_steps",
                     "trainer.max_time", "compare_scratch", "evaluate_test", "trainer.logger")  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    paper: tuple[str, float] | None = None
    """(Table 1 row, CNN/DM perplexity) when this is one of the shipped recipes the paper ablates."""


@dataclass(frozen=True)
class AblationConfig:
    pretrain_config: Path
    finetune_config: Path
    recipes: tuple[Recipe, ...]
    seeds: tuple[int, ...]
    pretrain_steps: int
    finetune_steps: int
    out_dir: Path
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)
    finetune_overrides: dict[str, Any] = field(default_factory=dict)


# --- the config ---------------------------------------------------------------------------------------------
def _input_path(value: Any, name: str, config_file: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{config_file}: {name}={value!r}: must be a path to a YAML file")
    path = Path(resolve_input(value, config_file))
    if not path.is_file():
        raise FileNotFoundError(f"{config_file}: {name}={value!r}: no such file ({where_looked(value, config_file)})")
    return path.resolve()


def _positive_int(value: Any, name: str, config_file: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{config_file}: {name}={value!r}: must be a positive integer (optimizer steps)")
    return value


def _overrides(value: Any, name: str, reserved: Sequence[str], config_file: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{config_file}: {name}={value!r}: must be a mapping of dotted keys to values")
    for key in value:
        if key.removeprefix("--") in reserved:
            raise ValueError(
                f"{config_file}: {name}.{key}: set by the harness for every cell (reserved: {', '.join(reserved)}); "
                "use pretrain_steps/finetune_steps/seeds/recipes/out_dir"
            )
    return {k.removeprefix("--"): v for k, v in value.items()}


def paper_entry(path: Path) -> tuple[str, float] | None:
    """The paper's Table 1 row of a shipped recipe (by file, not by name: a user's text_infilling.yaml has none)."""
    shipped = REPO / "configs" / "noise" / f"{path.stem}.yaml"
    if path.stem in PAPER_TABLE1 and shipped.is_file() and shipped.resolve() == path.resolve():
        return PAPER_TABLE1[path.stem]
    return None


def _recipes(value: Any, config_file: Path) -> tuple[Recipe, ...]:
    from bart_pretrain.data.noise_config import load_noise

    if not isinstance(value, list) or not value:
        raise ValueError(
            f"{config_file}: recipes={value!r}: the grid is empty; list at least one noise recipe (a path such as "
            "configs/noise/text_infilling.yaml, or {name: ..., path: ...})"
        )
    recipes: list[Recipe] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(value):
        where = f"recipes[{i}]"
        if isinstance(item, Mapping):
            unknown = set(item) - {"name", "path"}
            if unknown or "path" not in item:
                raise ValueError(
                    f"{config_file}: {where}={dict(item)!r}: a recipe is a path or {{name: ..., path: ...}} "
                    f"(unknown keys: {sorted(unknown)})"
                )
            name, raw = item.get("name"), item["path"]
        else:
            name, raw = None, item
        path = _input_path(raw, where, config_file)
        name = path.stem if name is None else name
        if not isinstance(name, str) or not name or not name.replace("-", "_").replace(".", "_").isidentifier():
            raise ValueError(f"{config_file}: {where}.name={name!r}: must be a non-empty name of letters, digits, _-.")
        if name in seen:
            raise ValueError(
                f"{config_file}: {where}: duplicate recipe name {name!r} ({seen[name]} and {raw}); names are the "
                "cells' directories: give one a `name:` ({name: other, path: ...})"
            )
        seen[name] = str(raw)
        try:
            load_noise(path)  # an unknown noise, a bad field or a missing plug-in fails now, not after an hour
        except (ValueError, TypeError, ImportError) as e:
            raise ValueError(f"{config_file}: {where}={raw!r}: {e}") from e
        recipes.append(Recipe(name, path, paper_entry(path)))
    return tuple(recipes)


def noise_schedule(pretrain_config: Path, overrides: Mapping[str, Any]):
    """The pretraining's ``data.noise_schedule`` (base config, then overrides) as a :class:`noising.NoiseSchedule`,
    or None."""
    from noising.schedule import NoiseSchedule

    data = (yaml.safe_load(pretrain_config.read_text(encoding="utf-8")) or {}).get("data") or {}
    fields = dict(overrides.get("data.noise_schedule", data.get("noise_schedule")) or {})
    fields |= {k.removeprefix("data.noise_schedule."): v for k, v in overrides.items()
               if k.startswith("data.noise_schedule.")}  # fmt: skip
    return NoiseSchedule(**fields) if fields else None


def check_schedule(config: AblationConfig, config_file: Path) -> None:
    """A curriculum that scales each noise's ``ratio``/``probability`` cannot scale a plug-in without one: say so now,
    not when that recipe's cell starts."""
    from bart_pretrain.data.noise_config import load_noise

    schedule = noise_schedule(config.pretrain_config, config.pretrain_overrides)
    if schedule is None:
        return
    for i, recipe in enumerate(config.recipes):
        try:
            schedule.check(load_noise(recipe.path))
        except ValueError as e:
            raise ValueError(
                f"{config_file}: recipes[{i}]={str(recipe.path)!r} under the pretraining's data.{e}; e.g. "
                "pretrain_overrides: {data.noise_schedule.mode: mix}"
            ) from None


def load_config(path: str | Path, out_dir: str | None = None) -> AblationConfig:
    """Read and validate an ablation YAML (configs/ablation/); every error names the field, the value and what is
    allowed, before any cell runs."""
    given = Path(path)
    config_file = Path(resolve_input(str(path)))
    if not config_file.is_file():
        raise FileNotFoundError(f"ablation config {str(path)!r}: no such file ({where_looked(given)})")
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{config_file}: not valid YAML: {e}") from e
    if not isinstance(raw, Mapping):
        raise ValueError(f"{config_file}: the top level must be a mapping with fields {', '.join(FIELDS)}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValueError(f"{config_file}: unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    if out_dir is not None:
        raw = {**raw, "out_dir": out_dir}
    missing = [k for k in REQUIRED if raw.get(k) is None]
    if missing:
        raise ValueError(f"{config_file}: missing field {missing[0]!r} ({FIELDS[missing[0]]})")
    seeds = raw["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise ValueError(f"{config_file}: seeds={seeds!r}: must be a non-empty list of integers >= 0, e.g. [1234]")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{config_file}: seeds={seeds!r}: duplicate seed; each seed must appear once")
    if not isinstance(raw["out_dir"], str) or not raw["out_dir"]:
        raise ValueError(f"{config_file}: out_dir={raw['out_dir']!r}: must be a directory path")
    config = AblationConfig(
        pretrain_config=_input_path(raw["pretrain_config"], "pretrain_config", config_file),
        finetune_config=_input_path(raw["finetune_config"], "finetune_config", config_file),
        recipes=_recipes(raw["recipes"], config_file),
        seeds=tuple(seeds),
        pretrain_steps=_positive_int(raw["pretrain_steps"], "pretrain_steps", config_file),
        finetune_steps=_positive_int(raw["finetune_steps"], "finetune_steps", config_file),
        out_dir=Path(raw["out_dir"]),
        pretrain_overrides=_overrides(raw.get("pretrain_overrides"), "pretrain_overrides", RESERVED_PRETRAIN,
                                      config_file),
        finetune_overrides=_overrides(raw.get("finetune_overrides"), "finetune_overrides", RESERVED_FINETUNE,
                                      config_file),
    )  # fmt: skip
    check_schedule(config, config_file)
    return config
