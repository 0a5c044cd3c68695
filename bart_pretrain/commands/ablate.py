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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bart_pretrain.commands.ablation_config import AblationConfig, Recipe, load_config
from bart_pretrain.commands.ablation_results import csv_text, markdown, plot, summarize
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
