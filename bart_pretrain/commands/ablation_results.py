"""The `bart-pretrain ablate` results: per-recipe spread over seeds, our rank beside the paper's, the rank agreement
(Spearman's rho, Kendall's tau-b; own implementations, ties handled), as markdown, CSV and a PNG chart."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bart_pretrain.commands.ablation_config import PAPER_SOURCE, AblationConfig, Recipe
from bart_pretrain.io import atomic_open


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
        "(each recipe sets a task of its own difficulty); recon chrF scores the reconstructions of validation "
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
