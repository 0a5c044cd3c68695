"""End-of-run pretraining report: steps, tokens, speed, train/validation loss first -> last, padding share, and the
reconstruction of two validation documents (original, corrupted, model output); plus a PNG of the loss curves.
Printed and saved as ``report.md``/``report.json`` in the run directory, the PNG beside the checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

import noising
from bart_pretrain.io import atomic_open, atomic_write_json, atomic_write_text


def plot_losses(history: dict[str, list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
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
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def reconstructions(module, datamodule, n: int = 2, num_beams: int = 4) -> list[dict[str, str]]:
    """Corrupt ``n`` validation documents as validation does, and let the model reconstruct them."""
    tok, docs = datamodule.tokenizer, datamodule.val_docs
    if docs is None or n <= 0:
        return []
    lengths = datamodule.val_lengths
    picks = [int(i) for i in np.flatnonzero((lengths >= 24) & (lengths <= 96))[:n]] or list(range(min(n, len(docs))))
    out = []
    model = module.model
    was_training = model.training
    model.eval()
    try:
        for i in picks:
            row = docs[i]
            source, target = datamodule.corruptor(row, noising.sample_rng(datamodule.seed + 1, 0, i))
            ids = torch.as_tensor(source, device=module.device)[None]
            max_length = min(len(target) + 16, model.config.max_position_embeddings)
            with torch.no_grad():
                generated = model.generate(ids, torch.ones_like(ids), num_beams=num_beams, max_length=max_length)
            out.append(
                {
                    "original": tok.decode(target.tolist()),
                    "corrupted": tok.decode(source.tolist(), skip_special_tokens=False),
                    "model": tok.decode(generated[0].tolist()),
                }
            )
    finally:
        model.train(was_training)
    return out


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
    if getattr(datamodule, "train_lengths", None) is not None:
        from bart_pretrain.pretrain_data import real_token_report

        report["target_real_token_share"] = real_token_report(datamodule.train_lengths, datamodule.max_tokens)
    report["reconstructions"] = reconstructions(module, datamodule)
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
    for k, rec in enumerate(r["reconstructions"], 1):
        lines += ["", f"## Validation document {k}", ""]
        lines += [f"- original:  {rec['original']}", f"- corrupted: {rec['corrupted']}", f"- model:     {rec['model']}"]
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
