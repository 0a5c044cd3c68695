"""`bart-pretrain ablate`: which corruption is best? The BART paper's objective ablation (Lewis et al. 2020, sec. 4.1,
Table 1) for any set of noise recipes and objectives, the user's own and plug-ins included, at equal compute.

Every recipe x seed is a *cell* with its own run directory: pretrained with the same base config, model, data order
and seed on the same number of target tokens (each recipe's steps = the budget / its target tokens per step, measured
on a sample of the training batches: an objective with short targets trains more steps), then fine-tuned on the
summarization pairs with the same budget (``bart-pretrain finetune --model.init_from <cell>/pretrain/...``). A cell
is finished when its ``done.json`` exists (written atomically after both stages): a rerun skips it, resumes a killed
pretraining exactly (``--ckpt_path last``) and restarts a killed fine-tune. ``results.{md,json,csv,png}`` rank the
recipes by fine-tune validation perplexity with their spread over seeds, the seeds' rank agreement and tiers of the
differences the seeds can tell apart, whether each cell learned its pretext, beside the BART and T5 papers' rankings.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bart_pretrain.commands.ablation_config import AblationConfig, Recipe, parse
from bart_pretrain.commands.ablation_results import csv_text, markdown, plot, pretext, summarize
from bart_pretrain.errors import UserError
from bart_pretrain.io import atomic_write_json, atomic_write_text


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
    steps: int
    """Its pretraining's optimizer steps (the recipe's share of the target-token budget, or ``pretrain_steps``)."""

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


def cells(config: AblationConfig, budget: Mapping[str, Mapping[str, Any]] | None = None) -> list[Cell]:
    """Every recipe x seed; each cell's steps from ``budget`` (:func:`measure_budget`), else ``pretrain_steps``, else
    1 (for :func:`check_overrides`, which only parses)."""

    def steps(recipe: Recipe) -> int:
        if budget is not None:
            return int(budget[recipe.name]["steps"])
        return config.pretrain_steps or 1

    return [Cell(r, s, config.out_dir / r.name / f"seed{s}", steps(r)) for r in config.recipes for s in config.seeds]


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
        "trainer.max_steps": cell.steps,
        "trainer.max_time": None,  # the budget is steps: a time guard would give recipes unequal budgets
        "trainer.val_check_interval": cell.steps * batches_per_step(config.pretrain_config, config.pretrain_overrides),
    }
    if config.noise_schedule_share is not None:  # the curriculum takes the same share of every cell's budget
        harness["data.noise_schedule.steps"] = max(1, round(config.noise_schedule_share * cell.steps))
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


def check_cells(config: AblationConfig, grid: list[Cell]) -> None:
    """A cell started with other settings (another budget, base config or recipe file) must not be resumed or
    reused as if it were this grid's: refuse before any work."""
    for cell in grid:
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
            raise UserError(
                f"cell {cell.name} in {cell.dir} was run with {what}; use another out_dir (--out_dir) or delete that "
                "cell's directory"
            )


def print_config(stage: str, main, argv: list[str]) -> dict:
    """The config ``argv`` resolves to (``--print_config``: types and key names checked, nothing built), or a
    :class:`UserError` with the stage CLI's own one-line reason."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            main([*argv, "--print_config"])
    except SystemExit as e:
        if e.code not in (0, None):
            lines = [line for line in err.getvalue().splitlines() if line.strip()]
            raise UserError(f"{stage}: {lines[-1] if lines else 'rejected'}") from None
    return yaml.safe_load(out.getvalue()) or {}


def check_overrides(config: AblationConfig) -> None:
    """Parse the first cell's pretrain and fine-tune command lines, so a misspelt override fails now with the CLI's
    message, not after the first stage."""
    from bart_pretrain.commands.finetune import main as finetune_main
    from bart_pretrain.commands.pretrain import main as pretrain_main

    cell = cells(config)[0]
    for stage, main, argv in (("pretrain", pretrain_main, pretrain_argv(config, cell)),
                              ("finetune", finetune_main, finetune_argv(config, cell))):  # fmt: skip
        print_config(
            f"{stage}_config {getattr(config, stage + '_config')} with {stage}_overrides "
            f"{getattr(config, stage + '_overrides')}",
            main,
            argv,
        )


# --- the equal budget ---------------------------------------------------------------------------------------
def ranks_per_step(trainer: Mapping[str, Any]) -> int:
    """Training batches per optimizer step: ``accumulate_grad_batches`` x devices x nodes of a resolved trainer
    config (each rank trains its own micro-batches)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    elif isinstance(devices, (list, tuple)):
        devices = len(devices)
    elif isinstance(devices, str) and "," in devices:
        devices = len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise UserError(
            f"trainer.devices={devices!r}: pretrain_target_tokens converts the budget to steps from the number of "
            "devices; give it as a number in pretrain_overrides (e.g. {trainer.devices: 8})"
        )
    return int(trainer.get("accumulate_grad_batches") or 1) * devices * int(trainer.get("num_nodes") or 1)


def target_tokens_per_batch(data: Mapping[str, Any], batches: int, seed: int) -> tuple[float, float, int]:
    """(mean target tokens per training batch at full strength, mean document tokens per batch, batches sampled).
    The document tokens are exact: all of the epoch's, over the batches of the token-budget plan (epoch 0 under
    ``seed``); they are the target of a sample a ``mix`` curriculum leaves as it is. The target tokens are that
    times the ratio of target to document tokens on the plan's first ``batches`` batches, each document corrupted
    by the full recipe (the objective's own target lengths: what ``tokens_seen`` counts, non-pad labels); a ratio,
    so the batches' varying sizes do not enter. ``data``: the pretraining's resolved ``data`` section."""
    import noising
    from bart_pretrain.data.batching import plan_batches
    from bart_pretrain.data.noise_config import load_noise
    from bart_pretrain.data.pretrain_module import PretrainDataModule

    if data.get("streaming"):
        raise UserError(
            "pretrain_target_tokens: data.streaming is true, and the target tokens per step are measured on the "
            "in-memory training documents; use pretrain_steps, or stream only outside the ablation"
        )
    # Full strength (no curriculum), no validation set, no worker processes: only the documents are read.
    # The resolved config holds the recipe as plain data (its dump); the module takes the pipeline itself.
    recipe = load_noise(data["noise"])
    module = PretrainDataModule(
        **{**data, "noise": recipe, "noise_schedule": None, "val_files": None, "num_workers": 0}
    )
    module.setup("fit")
    plan = plan_batches(module.train_lengths, module.max_tokens, seed=seed, max_sentences=module.max_sentences)
    per_batch = float(module.train_lengths.sum()) / len(plan)
    targets = documents = 0
    for batch in plan[:batches]:
        columns = module.train_docs[[int(i) for i in batch]]
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        for i, row in zip(batch, rows, strict=True):
            _, target = module.corruptor(row, noising.sample_rng(seed, 0, int(i)), None)
            targets += len(target)
        documents += int(module.train_lengths[batch].sum())
    return per_batch * targets / documents, per_batch, len(plan[:batches])


def budget_steps(
    target_tokens: int, full: float, identity: float, schedule: Mapping[str, Any] | None, share: float | None
) -> tuple[int, float]:
    """(optimizer steps, their mean target tokens per step): the fewest steps whose target tokens reach
    ``target_tokens``, with ``full`` target tokens a step at full strength and ``identity`` a step of samples left as
    they are. Under a curriculum (``schedule``: the resolved ``data.noise_schedule``; its length ``share`` x the steps
    when given, else its ``steps``) the strength at step t ramps linearly from ``start`` to 1; in ``mix`` mode that
    share of the samples gets the full recipe and the rest are (document, document), so step t trains on
    ``s(t) * full + (1 - s(t)) * identity`` target tokens on average (in ``ratio`` mode the target is the document:
    ``full == identity``)."""
    start = float(schedule.get("start", 0.0)) if schedule else 1.0

    def ramp(steps: int) -> int:
        if not schedule:
            return 0
        return max(1, round(share * steps)) if share is not None else int(schedule.get("steps", 0))

    def tokens(steps: int) -> float:
        length = ramp(steps)
        k = min(steps, length)
        strength_sum = k * start + (1.0 - start) * k * (k - 1) / (2 * length) if length else 0.0
        return k * identity + (full - identity) * strength_sum + (steps - k) * full

    low, high = 1, max(1, math.ceil(target_tokens / min(full, identity))) + 1
    while low < high:  # the fewest steps that reach the budget
        mid = (low + high) // 2
        low, high = (mid + 1, high) if tokens(mid) < target_tokens else (low, mid)
    return low, tokens(low) / low


def budget_key(config: AblationConfig, recipe: Recipe) -> dict[str, Any]:
    """What a recipe's measured target tokens per step depend on (a cached measurement is reused only if equal)."""
    return {"recipe": content_hash(recipe.path), "pretrain_config": content_hash(config.pretrain_config),
            "pretrain_overrides": json.loads(json.dumps(config.pretrain_overrides, sort_keys=True, default=str)),
            "batches": config.budget_batches, "seed": config.budget_seed}  # fmt: skip


def measure_budget(config: AblationConfig, log=print) -> dict[str, dict[str, Any]] | None:
    """Per recipe: its target tokens per optimizer step at full strength and of the documents themselves (measured;
    cached in ``<out_dir>/budget.json``), and the steps that give it ``pretrain_target_tokens`` under the
    pretraining's curriculum (:func:`budget_steps`); None when the budget is ``pretrain_steps``."""
    if config.pretrain_target_tokens is None:
        return None
    from bart_pretrain.commands.pretrain import main as pretrain_main

    path = config.out_dir / "budget.json"
    cached = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    budget: dict[str, dict[str, Any]] = {}
    for recipe in config.recipes:
        key = budget_key(config, recipe)
        entry = cached.get(recipe.name)
        if entry is None or entry.get("key") != key:
            argv = ["-c", str(config.pretrain_config), *_flags(config.pretrain_overrides),
                    "--data.noise", str(recipe.path)]  # fmt: skip
            resolved = print_config(f"pretrain_config {config.pretrain_config}", pretrain_main, argv)
            # Input paths come back absolute: the parser resolved them against the config file naming them.
            data = resolved.get("data") or {}
            t0 = time.perf_counter()
            full, documents, sampled = target_tokens_per_batch(data, config.budget_batches, config.budget_seed)
            per_step = ranks_per_step(resolved.get("trainer") or {})
            seconds = time.perf_counter() - t0
            log(f"[{recipe.name}] {full * per_step:,.0f} target tokens per step at full strength (documents: "
                f"{documents * per_step:,.0f}; measured on {sampled} batches, {seconds:.0f} s)")  # fmt: skip
            entry = {"key": key, "batches_sampled": sampled, "target_tokens_per_step": full * per_step,
                     "document_tokens_per_step": documents * per_step,
                     "noise_schedule": data.get("data.noise_schedule")}  # fmt: skip
        if entry["target_tokens_per_step"] <= 0:
            raise UserError(f"recipes: {recipe.path}: its targets are empty on the sampled batches; nothing to train")
        steps, mean = budget_steps(config.pretrain_target_tokens, entry["target_tokens_per_step"],
                                   entry["document_tokens_per_step"], entry["noise_schedule"],
                                   config.noise_schedule_share)  # fmt: skip
        budget[recipe.name] = {**entry, "steps": steps, "mean_target_tokens_per_step": mean}
    config.out_dir.mkdir(parents=True, exist_ok=True)
    kept = ("steps", "mean_target_tokens_per_step")
    atomic_write_json(path, {name: {k: v for k, v in e.items() if k not in kept} for name, e in budget.items()})
    return budget


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
    report = pretrain_report(cell, cell.steps)
    if report is None:
        argv = pretrain_argv(config, cell)
        resume = cell.last_ckpt.is_file()
        log(f"[{cell.name}] pretraining{' (resuming from ' + str(cell.last_ckpt) + ')' if resume else ''}")
        run_stage(f"{cell.name}: pretraining", pretrain_main, argv + (["--ckpt_path", "last"] if resume else []))
        report = pretrain_report(cell, cell.steps)
        if report is None and resume:
            # Killed after its final checkpoint but before its report: a resume at the end trains nothing and so
            # reports nothing. Pretraining is deterministic: run it again from the start.
            log(f"[{cell.name}] the resumed pretraining had already finished but left no report; pretraining again")
            shutil.rmtree(cell.pretrain_dir)
            run_stage(f"{cell.name}: pretraining", pretrain_main, argv)
            report = pretrain_report(cell, cell.steps)
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
        "target_tokens_seen": report.get("tokens_seen"),
        "pretrain_val_loss": report["val_loss_last"],
        "pretrain_val_step": report["val_points"][-1][0] if report.get("val_points") else None,
        "recon_chrf": (recon.get("model") or {}).get("chrf"),
        "copy_chrf": (recon.get("copy_baseline") or {}).get("chrf"),
        "pretext": pretext(report),
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


def write_results(config: AblationConfig, grid: list[Cell], budget: Mapping[str, Mapping[str, Any]] | None) -> dict:
    """results.{md,json,csv,png} in out_dir from the finished cells (each file written atomically)."""
    results = [r for c in grid if (r := finished(c)) is not None]
    summary = summarize(config, results, budget)
    out = config.out_dir
    atomic_write_text(out / "results.md", markdown(summary))
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "results.csv", csv_text(summary))
    plot(summary, out / "results.png")
    return summary


# --- the command --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the grid and write the results; bad input raises :class:`UserError` before any cell runs (a
    bad command line or config file: one line and exit 2 from the parser)."""
    config, table_only = parse(sys.argv[1:] if argv is None else argv)
    if not table_only:
        check_overrides(config)
    budget = measure_budget(config)
    grid = cells(config, budget)
    check_cells(config, grid)
    print(
        f"ablation: {len(config.recipes)} recipes x {len(config.seeds)} seeds = {len(grid)} cells, in {config.out_dir}"
    )
    if not table_only:
        for k, cell in enumerate(grid, 1):
            if cell.done_path.is_file():
                print(f"[{cell.name}] finished earlier ({cell.done_path}); skipped")
                continue
            print(f"[{cell.name}] cell {k}/{len(grid)}, {cell.steps} pretraining steps")
            try:
                run_cell(config, cell)
            except StageFailed as e:
                write_results(config, grid, budget)
                print(f"bart-pretrain ablate: error: {e}", file=sys.stderr)
                return 1
            except BaseException:  # the traceback follows; the finished cells' table is kept
                print(f"[{cell.name}] failed; its directory is kept and a rerun resumes it", file=sys.stderr)
                write_results(config, grid, budget)
                raise
            write_results(config, grid, budget)  # the table grows as cells finish
    summary = write_results(config, grid, budget)
    print(markdown(summary))
    written = [config.out_dir / f"results.{x}" for x in ("md", "json", "csv", "png")]
    print(f"written: {', '.join(str(p) for p in written if p.is_file())}")
    return 0 if summary["cells_finished"] == summary["cells_total"] or table_only else 1


if __name__ == "__main__":
    raise SystemExit(main())
