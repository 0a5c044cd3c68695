"""`bart-pretrain ablate`: which corruption is best? The BART paper's objective ablation (Lewis et al. 2020, sec. 4.1,
Table 1) for any set of noise recipes, the user's own and plug-ins included.

Every recipe x seed is a *cell* with its own run directory: pretrained with the same base config, model, data order,
seed and step budget (``bart-pretrain pretrain`` with dotted overrides), then fine-tuned on the summarization pairs
with the same budget (``bart-pretrain finetune --model.init_from <cell>/pretrain/checkpoints/last.ckpt``). A cell
is finished when its ``done.json`` exists (written atomically after both stages): a rerun skips it, resumes a killed
pretraining exactly (``--ckpt_path last``) and restarts a killed fine-tune. ``results.{md,json,csv,png}`` rank the
recipes by fine-tune validation perplexity beside the paper's CNN/DM perplexities, with Spearman's rho and
Kendall's tau between the two rankings.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bart_pretrain.io import atomic_open, atomic_write_json, atomic_write_text
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


# --- cells --------------------------------------------------------------------------------------------------
def _value(v: Any) -> str:
    """A YAML/JSON value as jsonargparse reads it from the command line."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    return json.dumps(v)


def _flags(pairs: Mapping[str, Any]) -> list[str]:
    return [x for k, v in pairs.items() for x in (f"--{k}", _value(v))]


@dataclass(frozen=True)
class Cell:
    recipe: Recipe
    seed: int
    dir: Path

    @property
    def name(self) -> str:
        return f"{self.recipe.name}/seed{self.seed}"

    @property
    def pretrain_dir(self) -> Path:
        return self.dir / "pretrain"

    @property
    def last_ckpt(self) -> Path:
        return self.pretrain_dir / "checkpoints" / "last.ckpt"

    @property
    def finetune_dir(self) -> Path:
        return self.dir / "finetune"

    @property
    def done_path(self) -> Path:
        return self.dir / "done.json"


def cells(config: AblationConfig) -> list[Cell]:
    return [Cell(r, s, config.out_dir / r.name / f"seed{s}") for r in config.recipes for s in config.seeds]


def batches_per_step(base_config: Path, overrides: Mapping[str, Any]) -> int:
    """Training batches per optimizer step (``trainer.accumulate_grad_batches`` of the overrides, else of the base
    config): Lightning counts ``val_check_interval`` in batches."""
    if "trainer.accumulate_grad_batches" in overrides:
        return int(overrides["trainer.accumulate_grad_batches"])
    trainer = (yaml.safe_load(base_config.read_text(encoding="utf-8")) or {}).get("trainer") or {}
    return int(trainer.get("accumulate_grad_batches") or 1)


def pretrain_argv(config: AblationConfig, cell: Cell) -> list[str]:
    """The same base config, model and budget for every cell; only the recipe and the seed differ. One validation
    at the last step (the reported loss and reconstruction score) unless an override asks for more."""
    harness = {
        "run_dir": str(cell.pretrain_dir.absolute()),
        "data.noise": str(cell.recipe.path),
        "seed_everything": cell.seed,
        "data.seed": cell.seed,
        "trainer.max_steps": config.pretrain_steps,
        "trainer.max_time": None,  # the budget is steps: a time guard would give recipes unequal budgets
        "trainer.val_check_interval": config.pretrain_steps
        * batches_per_step(config.pretrain_config, config.pretrain_overrides),
    }
    return ["-c", str(config.pretrain_config), *_flags(harness), *_flags(config.pretrain_overrides)]


def finetune_argv(config: AblationConfig, cell: Cell) -> list[str]:
    """The fine-tune's data seed (its batch order and evaluation subsets) stays the config's: every cell is scored on
    the same validation and test pairs."""
    harness = {
        "model.init_from": str(cell.last_ckpt.absolute()),
        "trainer.default_root_dir": str(cell.finetune_dir.absolute()),
        "compare_scratch": False,
        "evaluate_test": True,
        "seed_everything": cell.seed,
        "trainer.max_steps": config.finetune_steps,
        "trainer.max_time": None,
        # One validation, at the last step: the loss whose exp is the perplexity.
        "trainer.val_check_interval": config.finetune_steps
        * batches_per_step(config.finetune_config, config.finetune_overrides),
    }
    return ["-c", str(config.finetune_config), *_flags(harness), *_flags(config.finetune_overrides)]


def content_hash(path: Path) -> str:
    """sha256 of a YAML file's parsed content: an edited comment keeps it, an edited value changes it."""
    import hashlib

    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_settings(config: AblationConfig, cell: Cell) -> dict[str, Any]:
    """What a cell's results depend on: both command lines and the content of the files they name first."""
    files = (cell.recipe.path, config.pretrain_config, config.finetune_config)
    return {"recipe": cell.recipe.name, "seed": cell.seed, "pretrain": pretrain_argv(config, cell),
            "finetune": finetune_argv(config, cell), "inputs": {str(p): content_hash(p) for p in files}}  # fmt: skip


def check_cells(config: AblationConfig) -> None:
    """A cell started with other settings (another budget, base config or recipe file) must not be resumed or
    reused as if it were this grid's: refuse before any work."""
    for cell in cells(config):
        recorded = cell.dir / "cell.json"
        if not recorded.is_file():
            continue
        old, new = json.loads(recorded.read_text(encoding="utf-8")), cell_settings(config, cell)
        if old != new:
            key = next(k for k in new if old.get(k) != new[k])
            if key == "inputs":
                changed = next(p for p in new["inputs"] if (old.get("inputs") or {}).get(p) != new["inputs"][p])
                what = f"another version of {changed} (its content changed since)"
            else:
                what = f"other {key} settings ({old.get(key)!r}, now {new[key]!r})"
            raise ValueError(
                f"cell {cell.name} in {cell.dir} was run with {what}; use another out_dir (--out_dir) or delete that "
                "cell's directory"
            )


def check_overrides(config: AblationConfig) -> None:
    """Parse the first cell's pretrain and fine-tune command lines (``--print_config``: types and key names checked,
    nothing built), so a misspelt override fails now with the CLI's message, not after the first stage."""
    import contextlib
    import warnings

    from bart_pretrain.commands.finetune import main as finetune_main
    from bart_pretrain.commands.pretrain import main as pretrain_main

    cell = cells(config)[0]
    for stage, main, argv in (("pretrain", pretrain_main, pretrain_argv(config, cell)),
                              ("finetune", finetune_main, finetune_argv(config, cell))):  # fmt: skip
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                main([*argv, "--print_config"])
        except SystemExit as e:
            if e.code not in (0, None):
                lines = [line for line in err.getvalue().splitlines() if line.strip()]
                raise ValueError(
                    f"{stage}_config {getattr(config, stage + '_config')} with {stage}_overrides "
                    f"{getattr(config, stage + '_overrides')}: {lines[-1] if lines else 'rejected'}"
                ) from None


def pretrain_report(cell: Cell, steps: int) -> dict | None:
    """The finished pretraining's report.json, or None (missing, or written by a run of another budget)."""
    path = cell.pretrain_dir / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return report if report.get("steps") == steps else None


def finetune_val_loss(run_dir: Path) -> tuple[int, float]:
    """(optimizer steps done, val/loss) of the last validation in a fine-tune's CSV log (``<run>/metrics.csv``, whose
    ``step`` column counts from 0): the loss without label smoothing on the validation subset."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the fine-tune wrote no CSV log; its validation loss is read from there")
    last = None
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("val/loss"):
                last = (int(row["step"]) + 1, float(row["val/loss"]))
    if last is None:
        raise ValueError(f"{path}: no val/loss row; the fine-tune never validated (trainer.val_check_interval?)")
    return last


class StageFailed(RuntimeError):
    """A stage exited with a non-zero code (it has printed why); the cell stays unfinished, a rerun resumes it."""


def run_stage(name: str, main, argv: list[str]) -> None:
    import warnings

    with warnings.catch_warnings():  # our own argv while sys.argv holds `ablate ...`: expected here
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        code = main(argv)
    if code:
        raise StageFailed(f"{name} exited with code {code}; rerun the same command to resume")


def run_cell(config: AblationConfig, cell: Cell, log=print) -> dict:
    """Both stages of one cell (skipping what is finished), then its done.json; returns the cell's result."""
    from bart_pretrain.commands.finetune import main as finetune_main
    from bart_pretrain.commands.pretrain import main as pretrain_main

    cell.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cell.dir / "cell.json", cell_settings(config, cell))
    t0 = time.perf_counter()
    report = pretrain_report(cell, config.pretrain_steps)
    if report is None:
        argv = pretrain_argv(config, cell)
        resume = cell.last_ckpt.is_file()
        log(f"[{cell.name}] pretraining{' (resuming from ' + str(cell.last_ckpt) + ')' if resume else ''}")
        run_stage(f"{cell.name}: pretraining", pretrain_main, argv + (["--ckpt_path", "last"] if resume else []))
        report = pretrain_report(cell, config.pretrain_steps)
        if report is None and resume:
            # Killed after its final checkpoint but before its report: a resume at the end trains nothing and so
            # reports nothing. Pretraining is deterministic: run it again from the start.
            log(f"[{cell.name}] the resumed pretraining had already finished but left no report; pretraining again")
            shutil.rmtree(cell.pretrain_dir)
            run_stage(f"{cell.name}: pretraining", pretrain_main, argv)
            report = pretrain_report(cell, config.pretrain_steps)
        if report is None:
            raise StageFailed(f"{cell.name}: pretraining finished without {cell.pretrain_dir / 'report.json'}")
    t1 = time.perf_counter()
    if cell.finetune_dir.exists():  # a fine-tune killed before its metrics.json: restart the stage
        log(f"[{cell.name}] removing the unfinished fine-tune in {cell.finetune_dir}; fine-tuning again")
        shutil.rmtree(cell.finetune_dir)
    log(f"[{cell.name}] fine-tuning from {cell.last_ckpt}")
    run_stage(f"{cell.name}: fine-tuning", finetune_main, finetune_argv(config, cell))
    t2 = time.perf_counter()
    metrics = json.loads((cell.finetune_dir / "metrics.json").read_text(encoding="utf-8"))
    tuned = metrics["from_pretrained"]
    if tuned["steps"] != config.finetune_steps:  # stopped early (an interrupt it survived): not this grid's budget
        raise StageFailed(
            f"{cell.name}: the fine-tune stopped at step {tuned['steps']} of {config.finetune_steps}; rerun the "
            "same command to fine-tune this cell again"
        )
    val_step, val_loss = finetune_val_loss(cell.finetune_dir / "from_pretrained")
    recon = report.get("reconstruction") or {}
    result = {
        "recipe": cell.recipe.name,
        "recipe_path": str(cell.recipe.path),
        "seed": cell.seed,
        "pretrain_steps": report["steps"],
        "pretrain_val_loss": report["val_loss_last"],
        "pretrain_val_step": report["val_points"][-1][0] if report.get("val_points") else None,
        "recon_chrf": (recon.get("model") or {}).get("chrf"),
        "copy_chrf": (recon.get("copy_baseline") or {}).get("chrf"),
        "finetune_steps": tuned["steps"],
        "finetune_val_loss": val_loss,
        "finetune_val_step": val_step,
        "finetune_val_ppl": math.exp(val_loss),
        "rouge1": tuned["rouge1"],
        "rouge2": tuned["rouge2"],
        "rougeL": tuned["rougeL"],
        "test_pairs": tuned["n"],
        "lead1_rougeL": metrics["lead-1"]["rougeL"],
        "seconds": {"pretrain": round(t1 - t0, 1), "finetune": round(t2 - t1, 1)},
    }
    atomic_write_json(cell.done_path, result)
    return result


def finished(cell: Cell) -> dict | None:
    return json.loads(cell.done_path.read_text(encoding="utf-8")) if cell.done_path.is_file() else None


# --- rank agreement -----------------------------------------------------------------------------------------
def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ascending; tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's r of the average ranks, so ties are handled); None when undefined
    (fewer than 2 points, or one side constant)."""
    if len(x) != len(y):
        raise ValueError(f"spearman_rho: {len(x)} x values but {len(y)} y values; must be equal")
    if len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else None


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties in either ranking handled); None when undefined."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau: {len(x)} x values but {len(y)} y values; must be equal")
    s = ties_x = ties_y = pairs = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = (x[i] > x[j]) - (x[i] < x[j]), (y[i] > y[j]) - (y[i] < y[j])
            s += dx * dy
            ties_x += dx == 0
            ties_y += dy == 0
            pairs += 1
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return s / denominator if denominator else None


# --- the results table --------------------------------------------------------------------------------------
METRICS = ("pretrain_val_loss", "recon_chrf", "copy_chrf", "finetune_val_ppl", "rouge1", "rouge2", "rougeL")


def spread(values: list[float]) -> dict[str, float | None]:
    """Mean, sample standard deviation (None for one value), min and max."""
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}


def summarize(config: AblationConfig, results: list[dict]) -> dict[str, Any]:
    """Per recipe: each metric's spread over its finished seeds, our rank by fine-tune validation perplexity, the
    paper's perplexity and rank (among the grid's paper recipes); and the rank agreement."""
    rows = []
    for recipe in config.recipes:
        mine = [r for r in results if r["recipe"] == recipe.name]
        row: dict[str, Any] = {
            "recipe": recipe.name,
            "path": str(recipe.path),
            "seeds": sorted(r["seed"] for r in mine),
        }
        for metric in METRICS:
            row[metric] = spread([r[metric] for r in mine if r[metric] is not None])
        row["paper_row"], row["paper_cnndm_ppl"] = recipe.paper or (None, None)
        rows.append(row)
    measured = [r for r in rows if r["finetune_val_ppl"]["mean"] is not None]
    for r, rank in zip(measured, average_ranks([r["finetune_val_ppl"]["mean"] for r in measured]), strict=True):
        r["rank"] = rank
    in_paper = [r for r in rows if r["paper_cnndm_ppl"] is not None]
    for r, rank in zip(in_paper, average_ranks([r["paper_cnndm_ppl"] for r in in_paper]), strict=True):
        r["paper_rank"] = rank
    both = [r for r in measured if r["paper_cnndm_ppl"] is not None]
    ours, paper = [r["finetune_val_ppl"]["mean"] for r in both], [r["paper_cnndm_ppl"] for r in both]
    rows.sort(key=lambda r: (r.get("rank") is None, r.get("rank") or 0, config.recipes.index(_recipe(config, r))))
    return {
        "rows": rows,
        "agreement": {
            "recipes": [r["recipe"] for r in both],
            "spearman_rho": spearman_rho(ours, paper),
            "kendall_tau": kendall_tau(ours, paper),
        },
        "budget": {
            "pretrain_steps": config.pretrain_steps,
            "finetune_steps": config.finetune_steps,
            "seeds": list(config.seeds),
            "pretrain_config": str(config.pretrain_config),
            "finetune_config": str(config.finetune_config),
        },
        "cells_finished": len(results),
        "cells_total": len(config.recipes) * len(config.seeds),
        "paper_source": PAPER_SOURCE,
        "cells": results,
    }


def _recipe(config: AblationConfig, row: dict) -> Recipe:
    return next(r for r in config.recipes if r.name == row["recipe"])


def _cell(s: dict, digits: int = 2) -> str:
    if s["mean"] is None:
        return "—"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s["std"] is not None else "")


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _rank(x: float | None) -> str:
    return "—" if x is None else f"{x:g}"


def markdown(summary: dict) -> str:
    b, a = summary["budget"], summary["agreement"]
    lines = [
        "# Which corruption is best?",
        "",
        f"Each cell: pretrain {b['pretrain_steps']} steps ({b['pretrain_config']}), then fine-tune "
        f"{b['finetune_steps']} steps ({b['finetune_config']}); seeds {b['seeds']}; "
        f"{summary['cells_finished']}/{summary['cells_total']} cells finished. Values are mean ± std over seeds "
        "(min and max in results.json/csv). Ranked by fine-tune validation perplexity (exp of the validation loss, "
        "the paper's measure; lower is better).",
        "",
        "| rank | recipe | seeds | pretrain val loss | recon chrF | copy chrF | fine-tune val ppl | ROUGE-1 | ROUGE-2 "
        "| ROUGE-L | paper CNN/DM ppl | paper rank |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {_rank(r.get('rank'))} | {r['recipe']} | {len(r['seeds'])} | {_cell(r['pretrain_val_loss'], 3)} "
            f"| {_cell(r['recon_chrf'], 1)} | {_cell(r['copy_chrf'], 1)} | {_cell(r['finetune_val_ppl'])} "
            f"| {_cell(r['rouge1'])} | {_cell(r['rouge2'])} | {_cell(r['rougeL'])} "
            f"| {_num(r['paper_cnndm_ppl'], 2) if r['paper_cnndm_ppl'] is not None else '—'} "
            f"| {_rank(r.get('paper_rank'))} |"
        )
    seconds = [c["seconds"]["pretrain"] + c["seconds"]["finetune"] for c in summary["cells"]]
    n = len(a["recipes"])
    agreement = (
        f"Spearman rho = {_num(a['spearman_rho'])}, Kendall tau = {_num(a['kendall_tau'])} over {n} recipes "
        f"({', '.join(a['recipes'])})"
        if n >= 2
        else "n/a (needs 2 or more of the paper's recipes with finished cells)"
    )
    lines += [
        "",
        f"Rank agreement with the paper (our fine-tune validation perplexity vs. the paper's): {agreement}.",
        "",
        *(
            [f"Time per cell (both stages, this run's sessions): {sum(seconds) / len(seconds):.0f} s on average.", ""]
            if seconds
            else []
        ),
        f"Paper values: {summary['paper_source']}; the paper fine-tunes on CNN/DM, we on the configured "
        "summarization pairs, so compare ranks, not values. Pretraining losses are not comparable across recipes "
        "(each recipe sets a task of its own difficulty); recon chrF is the greedy reconstruction of validation "
        "documents against the originals, copy chrF the corrupted source itself (masks dropped).",
    ]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ["rank", "recipe", "path", "seeds"]
CSV_COLUMNS += [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "min", "max")]
CSV_COLUMNS += ["paper_row", "paper_cnndm_ppl", "paper_rank"]


def csv_text(summary: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in summary["rows"]:
        flat = {
            "rank": r.get("rank"),
            "recipe": r["recipe"],
            "path": r["path"],
            "seeds": " ".join(map(str, r["seeds"])),
        }
        flat |= {
            "paper_row": r["paper_row"],
            "paper_cnndm_ppl": r["paper_cnndm_ppl"],
            "paper_rank": r.get("paper_rank"),
        }
        flat |= {f"{m}_{s}": r[m][s] for m in METRICS for s in ("mean", "std", "min", "max")}
        writer.writerow({k: "" if v is None else v for k, v in flat.items()})
    return out.getvalue()


def plot(summary: dict, path: Path) -> None:
    """Fine-tune validation perplexity (min-max over seeds) beside the paper's, ROUGE-1/2/L, reconstruction chrF
    against the copy baseline; recipes in our rank order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["rows"] if r["finetune_val_ppl"]["mean"] is not None]
    if not rows:
        return
    names, x = [r["recipe"] for r in rows], list(range(len(rows)))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))

    def bars(ax, metric, offset, width, label):
        mean = [r[metric]["mean"] or 0.0 for r in rows]
        low = [m - (r[metric]["min"] if r[metric]["min"] is not None else m) for m, r in zip(mean, rows, strict=True)]
        high = [(r[metric]["max"] if r[metric]["max"] is not None else m) - m for m, r in zip(mean, rows, strict=True)]
        ax.bar([i + offset for i in x], mean, width, yerr=[low, high], capsize=3, label=label)

    ax = axes[0]
    bars(ax, "finetune_val_ppl", 0.0, 0.6, "ours (min-max over seeds)")
    ax.set_ylabel("our fine-tune validation perplexity")
    paper = [(i, r["paper_cnndm_ppl"]) for i, r in enumerate(rows) if r["paper_cnndm_ppl"] is not None]
    if paper:
        twin = ax.twinx()
        twin.plot([i for i, _ in paper], [p for _, p in paper], "D", color="tab:red", label="paper")
        twin.set_ylabel("paper CNN/DM perplexity (Table 1)", color="tab:red")
        twin.legend(loc="upper right", fontsize=8)
    a = summary["agreement"]
    ax.set_title(f"perplexity (lower is better); Spearman {_num(a['spearman_rho'], 2)}, "
                 f"Kendall {_num(a['kendall_tau'], 2)}", fontsize=10)  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    for ax, metrics, title in (
        (axes[1], (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")), "test ROUGE (F1 x 100)"),
        (axes[2], (("recon_chrf", "model"), ("copy_chrf", "copy baseline")), "pretraining reconstruction chrF"),
    ):
        width = 0.8 / len(metrics)
        for k, (metric, label) in enumerate(metrics):
            bars(ax, metric, (k - (len(metrics) - 1) / 2) * width, width, label)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_results(config: AblationConfig) -> dict:
    """results.{md,json,csv,png} in out_dir from the finished cells (each file written atomically)."""
    results = [r for c in cells(config) if (r := finished(c)) is not None]
    summary = summarize(config, results)
    out = config.out_dir
    atomic_write_text(out / "results.md", markdown(summary))
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "results.csv", csv_text(summary))
    plot(summary, out / "results.png")
    return summary


# --- the command --------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bart-pretrain ablate", description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", required=True, help="an ablation YAML (configs/ablation/default.yaml)")
    p.add_argument("--out_dir", default=None, help="override the config's out_dir")
    p.add_argument("--table_only", action="store_true", help="write the results from finished cells; run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config, args.out_dir)
        check_cells(config)
        if not args.table_only:
            check_overrides(config)
    except (ValueError, FileNotFoundError) as e:
        print(f"bart-pretrain ablate: error: {e}", file=sys.stderr)
        return 2
    grid = cells(config)
    print(
        f"ablation: {len(config.recipes)} recipes x {len(config.seeds)} seeds = {len(grid)} cells, in {config.out_dir}"
    )
    if not args.table_only:
        for k, cell in enumerate(grid, 1):
            if cell.done_path.is_file():
                print(f"[{cell.name}] finished earlier ({cell.done_path}); skipped")
                continue
            print(f"[{cell.name}] cell {k}/{len(grid)}")
            try:
                run_cell(config, cell)
            except StageFailed as e:
                write_results(config)
                print(f"bart-pretrain ablate: error: {e}", file=sys.stderr)
                return 1
            except BaseException:  # the traceback follows; the finished cells' table is kept
                print(f"[{cell.name}] failed; its directory is kept and a rerun resumes it", file=sys.stderr)
                write_results(config)
                raise
            write_results(config)  # the table grows as cells finish
    summary = write_results(config)
    print(markdown(summary))
    written = [config.out_dir / f"results.{x}" for x in ("md", "json", "csv", "png")]
    print(f"written: {', '.join(str(p) for p in written if p.is_file())}")
    return 0 if summary["cells_finished"] == summary["cells_total"] or args.table_only else 1


if __name__ == "__main__":
    raise SystemExit(main())
