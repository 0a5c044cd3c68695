"""End-of-run pretraining report: steps, tokens, speed, train/validation loss first -> last, padding share, and the
reconstruction of two validation documents (original, corrupted, model output); plus a PNG of the loss curves.
Printed and saved as ``report.md``/``report.json`` in the run directory, the PNG beside the checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from bart_pretrain.io import atomic_open, atomic_write_json, atomic_write_text


def plot_losses(history: dict[str, list], path: Path) -> None:
    """Loss curves, and beside them (when measured) the reconstruction chrF against the copy baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recon = history.get("reconstruction") or []
    fig, axes = plt.subplots(1, 2 if recon else 1, figsize=(12 if recon else 7, 4), squeeze=False)
    ax = axes[0, 0]
    for name, style in (("train", "-"), ("val", "o-")):
        points = history.get(name) or []
        if points:
            steps, losses = zip(*points, strict=True)
            ax.plot(steps, losses, style, label=f"{name} loss", markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy per target token (nats)")
    ax.set_title("BART denoising pretraining")
    ax.grid(alpha=0.3)
    ax.legend()
    if recon:
        ax = axes[0, 1]
        steps, chrf, bleu, copy_chrf, copy_bleu = zip(*recon, strict=True)
        ax.plot(steps, chrf, "o-", label="model chrF", markersize=3)
        ax.plot(steps, copy_chrf, "--", label="copy baseline chrF")
        ax.plot(steps, bleu, "s-", label="model BLEU", markersize=3)
        ax.plot(steps, copy_bleu, ":", label="copy baseline BLEU")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("score vs. the original (0-100)")
        ax.set_title("reconstructions of validation documents")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def final_reconstruction(module, trainer: pl.Trainer) -> dict | None:
    """The module's reconstruction evaluation at the last step (computed now if the last validation was earlier).
    Where its decoding bans repeated n-grams, the same documents decoded without the ban are scored beside it: what
    the model does on its own."""
    result = getattr(module, "last_reconstruction", None)
    probe = module.get_reconstruction_probe() if hasattr(module, "get_reconstruction_probe") else None
    if probe is not None and (result is None or result["step"] != trainer.global_step):
        result = probe.evaluate(module.model) | {"step": int(trainer.global_step)}
    if probe is not None and probe.no_repeat_ngram_size and "without_ngram_ban" not in result:
        plain = probe.evaluate(module.model, no_repeat_ngram_size=0)
        result = result | {"without_ngram_ban": {k: plain[k] for k in ("model", "run_on")}}
    return result


def _first_last(points: list) -> tuple[float | None, float | None]:
    if not points:
        return None, None
    tail = [loss for _, loss in points[-10:]]  # the last value is noisy for train loss: mean of the last 10 steps
    return float(points[0][1]), float(np.mean(tail)) if len(points) > 1 else float(points[-1][1])


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def build_report(trainer: pl.Trainer, module, datamodule, seconds: float, session_tokens: int) -> dict[str, Any]:
    train_first, train_last = _first_last(module.history["train"])
    val_points = module.history["val"]
    report = {
        "steps": int(trainer.global_step),
        "tokens_seen": int(module.tokens_seen),
        "train_seconds_this_session": round(seconds, 1),
        "tokens_per_s": round(session_tokens / max(seconds, 1e-9), 1),
        "train_loss_first": train_first,
        "train_loss_last10_mean": train_last,
        "val_loss_first": float(val_points[0][1]) if val_points else None,
        "val_loss_last": float(val_points[-1][1]) if val_points else None,
        "val_points": [[int(s), float(v)] for s, v in val_points],
        "parameters": sum(p.numel() for p in module.model.parameters()),
    }
    padding = datamodule.target_padding() if hasattr(datamodule, "target_padding") else None
    if padding is not None:
        report["target_real_token_share"] = padding
    split = {k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    report["val_last"] = {k: split[k] for k in sorted(split) if k.startswith(("loss", "token_acc"))}
    recon = final_reconstruction(module, trainer)
    if recon is not None:
        report["reconstruction"] = {k: v for k, v in recon.items() if k != "examples"}
        report["reconstructions"] = recon["examples"][:3]
    return report


def format_report(r: dict[str, Any]) -> str:
    lines = [
        "# Pretraining report",
        "",
        f"- steps: {r['steps']}; target tokens seen: {r['tokens_seen']:,}; parameters: {r['parameters']:,}",
        f"- this session: {r['train_seconds_this_session']} s of training, {r['tokens_per_s']:,} target tokens/s",
        f"- train loss: {_fmt(r['train_loss_first'])} -> {_fmt(r['train_loss_last10_mean'])} (mean of last 10 steps)",
        f"- validation loss: {_fmt(r['val_loss_first'])} -> {_fmt(r['val_loss_last'])} "
        f"({len(r['val_points'])} evaluations: " + ", ".join(f"{v:.2f}@{s}" for s, v in r["val_points"]) + ")",
    ]
    share = r.get("target_real_token_share")
    if share:
        lines.append(
            f"- real (non-pad) target tokens: {share['real_token_share']:.1%} of the padded batches "
            f"(worst batch {share['min_batch_real_token_share']:.1%}, {int(share['batches'])} batches per epoch)"
        )
    last = r.get("val_last") or {}
    if "token_acc_corrupted" in last:
        lines.append(
            f"- validation token accuracy: {last['token_acc']:.1%} overall, {last['token_acc_corrupted']:.1%} at "
            f"corrupted positions, {last.get('token_acc_kept', float('nan')):.1%} at kept ones (loss "
            f"{last['loss_corrupted']:.2f} / {last.get('loss_kept', float('nan')):.2f} nats)"
        )
    rec = r.get("reconstruction")
    objective = bool(rec) and rec.get("reference") == "target"
    if rec:
        m, c = rec["model"], rec["copy_baseline"]
        verdict = "BEATS" if rec["beats_copy_baseline"] else "does NOT beat"
        beams, ban = rec.get("num_beams", 1), rec.get("no_repeat_ngram_size", 0)
        search = ("greedy" if beams == 1 else f"beam {beams}") + (f", no repeated {ban}-token sequence" if ban else "")
        what, baseline = "reconstruction", "corrupted source, masks dropped"
        if objective:  # an objective's target is not the document: outputs and the source are scored against it
            what, baseline = "the objective's targets (sentinels written out)", "the source, special tokens dropped"
        lines += [
            f"- {what} of {rec['documents']} validation documents ({search}, step {rec['step']}): "
            f"chrF {m['chrf']:.2f}, BLEU {m['bleu']:.2f}; copy baseline ({baseline}): "
            f"chrF {c['chrf']:.2f}, BLEU {c['bleu']:.2f}: the model {verdict} the copy baseline (on both scores)",
        ]
        run_on = rec.get("run_on")
        if run_on:
            lines.append(
                f"- reconstructions that repeat a sentence or a 6-word sequence (more than the original does): "
                f"{run_on['repeat_share']:.1%}; longer than the original by more than 10%: {run_on['long_share']:.1%}"
            )
        plain = rec.get("without_ngram_ban")
        if plain:
            pm, pr = plain["model"], plain["run_on"]
            lines.append(
                f"- the same documents decoded without the n-gram ban (what the model does on its own): chrF "
                f"{pm['chrf']:.2f}, BLEU {pm['bleu']:.2f}; repeat {pr['repeat_share']:.1%}, longer by more than "
                f"10%: {pr['long_share']:.1%}"
            )
    for k, rec in enumerate(r.get("reconstructions", []), 1):
        lines += ["", f"## Validation document {k}", ""]
        first = f"- target:    {rec['original']}" if objective else f"- original:  {rec['original']}"
        lines += [first, f"- corrupted: {rec['corrupted']}", f"- model:     {rec['model']}"]
    return "\n".join(lines) + "\n"


class PretrainReport(pl.Callback):
    """Times the training, then (rank 0, at the end of fit) prints and saves the report and the loss plot."""

    def __init__(self, run_dir: str | Path, plot_dir: str | Path | None = None):
        self.run_dir = Path(run_dir)
        self.plot_dir = Path(plot_dir) if plot_dir else self.run_dir
        self._start: float | None = None
        self._tokens0 = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self._start, self._tokens0 = time.perf_counter(), pl_module.tokens_seen

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero or self._start is None:
            return
        seconds = time.perf_counter() - self._start
        report = build_report(trainer, pl_module, trainer.datamodule, seconds, pl_module.tokens_seen - self._tokens0)
        text = format_report(report)
        atomic_write_text(self.run_dir / "report.md", text)
        atomic_write_json(self.run_dir / "report.json", report)
        plot_losses(pl_module.history, self.plot_dir / "loss_curves.png")
        print("\n" + text + f"\nsaved: {self.run_dir / 'report.md'}, {self.plot_dir / 'loss_curves.png'}")
