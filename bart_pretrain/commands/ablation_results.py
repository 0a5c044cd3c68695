"""The `bart-pretrain ablate` results: per-recipe spread over seeds (mean, min-max), the rank agreement between seeds
and with the BART and T5 papers (Spearman's rho, Kendall's tau-b; own implementations, ties handled), tiers that call a
difference only where the seeds' ranges do not overlap, whether each cell learned its pretext; as markdown, CSV and a
PNG chart."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bart_pretrain.commands.ablation_config import (
    PAPER_SOURCE,
    T5_NO_PRETRAINING,
    T5_SOURCE,
    AblationConfig,
    Recipe,
)
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
METRICS = ("pretrain_val_loss", "recon_chrf", "copy_chrf", "finetune_val_ppl", "rouge1", "rouge2", "rougeL",
           "target_tokens_seen", "pretext_model", "pretext_baseline")  # fmt: skip
RANKED_BY = "finetune_val_ppl"


def spread(values: list[float]) -> dict[str, float | None]:
    """Mean, sample standard deviation (None for one value), min and max."""
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return {"mean": mean, "std": std, "min": min(values), "max": max(values)}


def pretext(report: Mapping[str, Any]) -> dict[str, Any]:
    """Whether a pretraining learned its own pretext, from its report.json: the chrF of its outputs on validation
    documents against the copy-style baseline of the same documents (the source itself as the answer), both scored
    against the original document, or against the objective's target where the recipe ends in an objective.
    ``learned`` is the report's own verdict (it beats the baseline on every score it reports), None where the
    report has no such evaluation."""
    recon = report.get("reconstruction") or {}
    model, baseline = recon.get("model") or {}, recon.get("copy_baseline") or {}
    if model.get("chrf") is None or baseline.get("chrf") is None:
        return {"measure": None, "model": None, "baseline": None, "learned": None}
    verdict = recon.get("beats_copy_baseline")
    learned = bool(verdict) if verdict is not None else model["chrf"] > baseline["chrf"]
    measure = "target chrF" if recon.get("reference") == "target" else "chrF"  # an objective's target, or the document
    return {"measure": measure, "model": model["chrf"], "baseline": baseline["chrf"], "learned": learned}


def _metric(result: Mapping[str, Any], metric: str) -> float | None:
    if metric.startswith("pretext_"):
        return (result.get("pretext") or {}).get(metric.removeprefix("pretext_"))
    return result.get(metric)


def tiers(rows: Sequence[Mapping[str, Any]], metric: str = RANKED_BY) -> list[int | None]:
    """Tier of each row (1 = best, lower ``metric`` is better) among the rows with two or more seeds (others: None).
    Rows sorted by their mean are cut between two neighbours only where every row above has its max below the min
    of every row under: a difference between tiers holds on every seed, one inside a tier is not called."""
    ranked = sorted((i for i, r in enumerate(rows) if len(r["seeds"]) >= 2 and r[metric]["mean"] is not None),
                    key=lambda i: rows[i][metric]["mean"])  # fmt: skip
    out: list[int | None] = [None] * len(rows)
    tier, ceiling = 1, -math.inf
    for k, i in enumerate(ranked):
        if k and all(rows[j][metric]["min"] > ceiling for j in ranked[k:]):
            tier += 1
        ceiling = max(ceiling, rows[i][metric]["max"])
        out[i] = tier
    return out


def overlapping(rows: Sequence[Mapping[str, Any]], metric: str = RANKED_BY) -> list[list[str] | None]:
    """For each row with two or more seeds: the other such rows whose min-max range over seeds overlaps its own
    (no difference called between them)."""

    def ok(r: Mapping[str, Any]) -> bool:
        return len(r["seeds"]) >= 2 and r[metric]["mean"] is not None

    return [
        [o["recipe"] for o in rows if o is not r and ok(o) and o[metric]["min"] <= r[metric]["max"]
         and r[metric]["min"] <= o[metric]["max"]] if ok(r) else None
        for r in rows
    ]  # fmt: skip


def seed_agreement(results: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Kendall's tau between the rankings two seeds give (fine-tune validation perplexity over the recipes finished
    under both), for each pair of seeds, and their mean (over the pairs where it is defined)."""
    by_seed = {s: {r["recipe"]: r[RANKED_BY] for r in results if r["seed"] == s} for s in seeds}
    pairs = []
    for a, b in itertools.combinations(seeds, 2):
        common = [name for name in by_seed[a] if name in by_seed[b]]
        tau = kendall_tau([by_seed[a][n] for n in common], [by_seed[b][n] for n in common])
        pairs.append({"seeds": [a, b], "recipes": len(common), "kendall_tau": tau})
    defined = [p["kendall_tau"] for p in pairs if p["kendall_tau"] is not None]
    return {"pairs": pairs, "mean_kendall_tau": sum(defined) / len(defined) if defined else None}


def published_agreement(rows: Sequence[Mapping[str, Any]], key: str, higher_is_better: bool) -> dict[str, Any]:
    """Our ranking (mean fine-tune perplexity) against a published one over the recipes that have both; ranks of
    the published values among the grid's recipes that have one (1 = best)."""
    have = [r for r in rows if r[key] is not None]
    sign = -1.0 if higher_is_better else 1.0
    for r, rank in zip(have, average_ranks([sign * r[key][1] for r in have]), strict=True):
        r[f"{key}_rank"] = rank
    both = [r for r in have if r[RANKED_BY]["mean"] is not None]
    ours, theirs = [r[RANKED_BY]["mean"] for r in both], [sign * r[key][1] for r in both]
    return {"recipes": [r["recipe"] for r in both], "spearman_rho": spearman_rho(ours, theirs),
            "kendall_tau": kendall_tau(ours, theirs)}  # fmt: skip


def summarize(
    config: AblationConfig, results: list[dict], budget: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Per recipe: each metric's spread over its finished seeds, its pretraining steps and target tokens per step,
    how many seeds learned the pretext, our rank by mean fine-tune validation perplexity and tier, the papers'
    values and ranks (among the grid's recipes they rank); the seeds' and the papers' rank agreement."""
    rows = []
    for recipe in config.recipes:
        mine = [r for r in results if r["recipe"] == recipe.name]
        verdicts = [(r.get("pretext") or {}).get("learned") for r in mine]
        row: dict[str, Any] = {
            "recipe": recipe.name,
            "path": str(recipe.path),
            "seeds": sorted(r["seed"] for r in mine),
            "pretrain_steps": int(budget[recipe.name]["steps"]) if budget else config.pretrain_steps,
            "target_tokens_per_step": budget[recipe.name]["mean_target_tokens_per_step"] if budget else None,
            "pretext_measure": next((r["pretext"]["measure"] for r in mine if (r.get("pretext") or {}).get("measure")),
                                    None),
            "learned_seeds": sum(v is True for v in verdicts),
            "judged_seeds": sum(v is not None for v in verdicts),
        }  # fmt: skip
        for metric in METRICS:
            row[metric] = spread([v for r in mine if (v := _metric(r, metric)) is not None])
        row["paper"], row["t5"] = recipe.paper, recipe.t5
        rows.append(row)
    measured = [r for r in rows if r[RANKED_BY]["mean"] is not None]
    for r, rank in zip(measured, average_ranks([r[RANKED_BY]["mean"] for r in measured]), strict=True):
        r["rank"] = rank
    for r, tier, others in zip(rows, tiers(rows), overlapping(rows), strict=True):
        r["tier"], r["not_separable_from"] = tier, others
    paper = published_agreement(rows, "paper", higher_is_better=False)
    t5 = published_agreement(rows, "t5", higher_is_better=True)
    rows.sort(key=lambda r: (r.get("rank") is None, r.get("rank") or 0, config.recipes.index(_recipe(config, r))))
    return {
        "rows": rows,
        "seed_agreement": seed_agreement(results, config.seeds),
        "agreement": paper,
        "t5_agreement": t5,
        "budget": {
            "pretrain_target_tokens": config.pretrain_target_tokens,
            "pretrain_steps": config.pretrain_steps,
            "budget_batches": config.budget_batches if config.pretrain_target_tokens else None,
            "finetune_steps": config.finetune_steps,
            "seeds": list(config.seeds),
            "pretrain_config": str(config.pretrain_config),
            "finetune_config": str(config.finetune_config),
        },
        "cells_finished": len(results),
        "cells_total": len(config.recipes) * len(config.seeds),
        "paper_source": PAPER_SOURCE,
        "t5_source": T5_SOURCE,
        "t5_no_pretraining_rouge2": T5_NO_PRETRAINING,
        "cells": results,
    }


def _recipe(config: AblationConfig, row: dict) -> Recipe:
    return next(r for r in config.recipes if r.name == row["recipe"])


def _range(s: Mapping[str, float | None], digits: int = 2) -> str:
    """``mean (min-max)``; the mean alone for one value; a dash for none."""
    if s["mean"] is None:
        return "—"
    if s["min"] == s["max"]:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _rank(x: float | None) -> str:
    return "—" if x is None else f"{x:g}"


def _published(row: Mapping[str, Any], key: str) -> str:
    entry = row[key]
    return "—" if entry is None else f"{entry[1]:.2f} ({_rank(row.get(f'{key}_rank'))})"


def _learned(row: Mapping[str, Any]) -> str:
    if not row["judged_seeds"]:
        return "unknown"
    if not row["learned_seeds"]:
        return "**did not learn**"
    return f"{row['learned_seeds']}/{row['judged_seeds']} seeds"


def _budget_line(summary: Mapping[str, Any]) -> str:
    b = summary["budget"]
    if b["pretrain_target_tokens"] is not None:
        pretrain = (f"pretrained on {b['pretrain_target_tokens']:,} target tokens (the equal budget: each recipe's "
                    f"steps = that / its target tokens per step, measured on {b['budget_batches']} training "
                    "batches at full strength)")  # fmt: skip
    else:
        pretrain = f"pretrained {b['pretrain_steps']} steps (the same steps, not the same target tokens)"
    return (f"Each cell: {pretrain} from {b['pretrain_config']}, then fine-tuned {b['finetune_steps']} steps "
            f"({b['finetune_config']}); seeds {b['seeds']}; {summary['cells_finished']}/{summary['cells_total']} "
            "cells finished.")  # fmt: skip


def _agreement(a: Mapping[str, Any]) -> str:
    n = len(a["recipes"])
    if n < 2:
        return "n/a (needs 2 or more of its recipes with finished cells)"
    return (f"Spearman rho = {_num(a['spearman_rho'])}, Kendall tau = {_num(a['kendall_tau'])} over {n} recipes "
            f"({', '.join(a['recipes'])})")  # fmt: skip


def markdown(summary: dict) -> str:
    seeds = summary["seed_agreement"]
    lines = [
        "# Which corruption is best?",
        "",
        _budget_line(summary),
        "",
        "Ranked by fine-tune validation perplexity (exp of the validation loss, the BART paper's measure; lower is "
        "better): mean (min-max) over seeds. A difference is called only between tiers, where the seeds' min-max "
        "ranges do not overlap; recipes of one tier are not separable by these seeds.",
        "",
        "| rank | tier | recipe | seeds | pretrain steps | target tokens/step | target tokens seen | fine-tune val ppl "
        "| not separable from | pretext: model vs copy baseline | learned | ROUGE-1/2/L | BART paper ppl (rank) "
        "| T5 paper ROUGE-2 (rank) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in summary["rows"]:
        others = r["not_separable_from"]
        pre = (f"{r['pretext_measure']} {_range(r['pretext_model'], 1)} vs {_range(r['pretext_baseline'], 1)}"
               if r["pretext_measure"] else "—")  # fmt: skip
        per_step = "—" if r["target_tokens_per_step"] is None else f"{r['target_tokens_per_step']:,.0f}"
        seen = r["target_tokens_seen"]["mean"]
        rouge = " / ".join(f"{r[m]['mean']:.2f}" if r[m]["mean"] is not None else "—"
                           for m in ("rouge1", "rouge2", "rougeL"))  # fmt: skip
        lines.append(
            f"| {_rank(r.get('rank'))} | {r['tier'] if r['tier'] is not None else '—'} | {r['recipe']} "
            f"| {len(r['seeds'])} | {r['pretrain_steps']} | {per_step} | {'—' if seen is None else f'{seen:,.0f}'} "
            f"| {_range(r['finetune_val_ppl'])} "
            f"| {'—' if others is None else (', '.join(others) or 'none')} | {pre} | {_learned(r)} | {rouge} "
            f"| {_published(r, 'paper')} | {_published(r, 't5')} |"
        )
    pairs = "; ".join(f"seeds {p['seeds'][0]} and {p['seeds'][1]}: {_num(p['kendall_tau'])} over {p['recipes']}"
                      for p in seeds["pairs"])  # fmt: skip
    ranked = [r for r in summary["rows"] if r["tier"] is not None]
    tier_text = "; ".join(
        f"tier {t}: " + ", ".join(r["recipe"] for r in ranked if r["tier"] == t)
        for t in sorted({r["tier"] for r in ranked})
    )
    silent = [r["recipe"] for r in summary["rows"] if r["judged_seeds"] and not r["learned_seeds"]]
    seconds = [c["seconds"]["pretrain"] + c["seconds"]["finetune"] for c in summary["cells"]]
    mapping = ", ".join(f"{r['recipe']} ~ {r['t5'][0]}" for r in summary["rows"] if r["t5"] is not None)
    mapping = mapping or "no recipe of the grid maps to its objectives"
    lines += [
        "",
        f"Rank agreement between seeds (Kendall tau of their rankings): {pairs or 'n/a (one seed)'}; "
        f"mean {_num(seeds['mean_kendall_tau'])}.",
        "",
        f"Tiers: {tier_text or 'none (needs two or more seeds per recipe)'}.",
        "",
        "Did not learn their pretext (no seed beat its copy-style baseline; their rank says little about the "
        f"objective): {', '.join(silent) or 'none'}.",
        "",
        f"Rank agreement with the BART paper (our mean perplexity vs. its CNN/DM perplexity): "
        f"{_agreement(summary['agreement'])}.",
        "",
        f"Rank agreement with the T5 paper (our mean perplexity vs. its CNN/DM ROUGE-2; {mapping}): "
        f"{_agreement(summary['t5_agreement'])}. For scale: the T5 paper's model "
        f"without pretraining scores {summary['t5_no_pretraining_rouge2']:.2f}, and our seeds agree with each other "
        f"at a mean tau of {_num(seeds['mean_kendall_tau'])}.",
        "",
        *(
            [f"Time per cell (both stages, this run's sessions): {sum(seconds) / len(seconds):.0f} s on average.", ""]
            if seconds
            else []
        ),
        f"Published values: {summary['paper_source']}; {summary['t5_source']}. The papers fine-tune on CNN/DM, we "
        "on the configured summarization pairs, so compare ranks, not values. Pretraining losses are not comparable "
        "across recipes (each recipe sets a task of its own difficulty); the pretext column scores the pretraining's "
        "outputs on validation documents against the copy-style baseline (the corrupted source itself).",
    ]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ["rank", "tier", "recipe", "path", "seeds", "pretrain_steps", "target_tokens_per_step", "learned_seeds",
               "judged_seeds", "not_separable_from"]  # fmt: skip
CSV_COLUMNS += [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "min", "max")]
CSV_COLUMNS += ["paper_row", "paper_cnndm_ppl", "paper_rank", "t5_objective", "t5_cnndm_rouge2", "t5_rank"]


def csv_text(summary: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in summary["rows"]:
        others = r["not_separable_from"]
        flat = {k: r.get(k) for k in ("rank", "tier", "recipe", "path", "pretrain_steps", "target_tokens_per_step",
                                      "learned_seeds", "judged_seeds")}  # fmt: skip
        flat |= {"seeds": " ".join(map(str, r["seeds"])), "not_separable_from": None if others is None
                 else " ".join(others)}  # fmt: skip
        paper, t5 = r["paper"] or (None, None), r["t5"] or (None, None)
        flat |= {"paper_row": paper[0], "paper_cnndm_ppl": paper[1], "paper_rank": r.get("paper_rank"),
                 "t5_objective": t5[0], "t5_cnndm_rouge2": t5[1], "t5_rank": r.get("t5_rank")}  # fmt: skip
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
    paper = [(i, r["paper"][1]) for i, r in enumerate(rows) if r["paper"] is not None]
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
