"""`bart-pretrain finetune`: fine-tuning on any (source, target) task on LightningCLI (BART paper section 3.3;
summarization by default). Fits ``FinetuneModule`` (``bart_pretrain.training.finetune``), then evaluates on the test
split with the task's metrics beside its baseline (``--model.metrics``, ``--model.baseline``) and, with
``--compare_scratch true``, beside the same fine-tune from random weights. A ``--trainer.default_root_dir`` that
holds a fine-tune is started over only with ``--overwrite true``; SIGTERM/SIGINT save ``last.ckpt`` and exit 143/130.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import datasets
from pytorch_lightning.callbacks import ModelCheckpoint

from bart_pretrain.commands.training_cli import TrainingCLI
from bart_pretrain.data.pairs_module import PairsDataModule
from bart_pretrain.errors import UserError
from bart_pretrain.evaluate import evaluate_pairs, markdown_table
from bart_pretrain.io import atomic_write_json, atomic_write_text, clean_stale_tmp
from bart_pretrain.metrics import baseline_predictions, score
from bart_pretrain.training.finetune import FinetuneModule
from bart_pretrain.training.guards import check_lengths


# --- the command ----------------------------------------------------------------------------------------------
def _variant(init_from: str | None) -> str:
    return "from_pretrained" if init_from is not None else "from_scratch"


class FinetuneCLI(TrainingCLI):
    """:class:`TrainingCLI` plus: the source length linked from the data to the model, a ``--checkpoint`` group
    (best and last), and each run (from pretrained, from scratch) in ``<trainer.default_root_dir>/<variant>/``."""

    RUN_DIR_FLAG = "--trainer.default_root_dir"
    RESUME_HINT = None  # a fine-tune starts over; see --overwrite

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument(
            "--compare_scratch",
            type=bool,
            default=False,
            help="also run the same fine-tune from random weights (same architecture, data and budget) and "
            "report both beside the baseline (--model.baseline)",
        )
        parser.add_argument(
            "--evaluate_test",
            type=bool,
            default=True,
            help="after fitting, beam-search the test split and write predictions and the task's metrics "
            "(--model.metrics)",
        )
        parser.link_arguments("data.max_source_length", "model.max_source_length")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {"checkpoint.filename": "best", "checkpoint.monitor": "val/loss", "checkpoint.save_last": True}
        )

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        self.root = Path(self.config.trainer.default_root_dir or "runs/finetune")
        clean_stale_tmp(self.root, recursive=True)  # what killed writes of predictions, metrics, ... left
        self.default_logger = self.config.trainer.logger in (None, True)
        self.place_run(_variant(self.config.model.init_from))

    def run_dir(self) -> Path:
        return self.root

    def check_lengths(self) -> None:
        h = self.datamodule.hparams
        lengths = {"--data.max_source_length": h.max_source_length, "--data.max_target_length": h.max_target_length}
        check_lengths(self.model.model.config.max_position_embeddings, **lengths)

    def place_run(self, variant: str) -> None:
        run_dir = str(self.root / variant)
        self.config.trainer.default_root_dir = run_dir
        if self.default_logger:
            self.config.trainer.logger = {
                "class_path": "pytorch_lightning.loggers.CSVLogger",
                "init_args": {"save_dir": run_dir, "name": "", "version": ""},
            }


def _fit_and_evaluate(cli, variant: str, run_dir: Path, evaluate_test: bool) -> dict | None:
    model: FinetuneModule = cli.model
    data: PairsDataModule = cli.datamodule
    data.attach_tokenizer(model.tokenizer)
    t0 = time.perf_counter()
    cli.fit()
    fit_seconds = time.perf_counter() - t0
    if not evaluate_test or cli.trainer.global_rank != 0:
        return None
    test = data.pairs("test")
    print(
        f"[{variant}] fitted {cli.trainer.global_step} steps in {fit_seconds:.0f} s; beam search on "
        f"{len(test)} test sources ...",
        file=sys.stderr,
    )
    metrics = evaluate_pairs(
        model.model,
        model.tokenizer,
        list(test["source"]),
        list(test["target"]),
        model.generation,
        model.metrics,
        out_dir=run_dir,
        max_source_length=model.hparams.max_source_length,
        beam_batch_tokens=model.hparams.beam_batch_tokens,
    )
    metrics.update(
        variant=variant,
        init_from=model.hparams.init_from,
        steps=cli.trainer.global_step,
        fit_seconds=round(fit_seconds, 1),
    )
    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def make_cli(argv: list[str] | None) -> FinetuneCLI:
    """Parse ``argv`` (config files, dotted overrides) and instantiate module, data module and trainer."""
    return FinetuneCLI(FinetuneModule, PairsDataModule, argv, "bart-pretrain finetune")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    datasets.disable_progress_bars()
    cli = make_cli(argv)
    cfg = cli.config
    if cfg.compare_scratch and cfg.model.init_from is None:
        raise UserError("--compare_scratch true needs --model.init_from (a checkpoint to compare with)")
    with cli.claimed():
        return _run(cli, argv)


def scratch_overrides(cli: FinetuneCLI) -> list[str]:
    """The command-line overrides that turn the fitted run ``cli`` into the same fine-tune from random weights: same
    architecture, tokenizer, data, seed and step budget; only the initial weights differ. If a ``--trainer.max_time``
    guard stopped the first run early, the second runs exactly as many steps, on the same learning-rate schedule (its
    length fixed to the first run's), with no time guard of its own."""
    # The very tokenizer of the first run (the file its checkpoint was read from may have moved since).
    tokenizer = cli.root / "tokenizer.json"
    cli.model.tokenizer.save(tokenizer)
    optim = {**dataclasses.asdict(cli.model.optim), "total_steps": cli.model.total_steps()}
    overrides = {
        "--model.init_from": "null",
        "--model.model_config": json.dumps(dataclasses.asdict(cli.model.model.config)),
        "--model.tokenizer_path": str(tokenizer),
        "--model.optim": json.dumps(optim),
        "--trainer.max_steps": str(cli.trainer.global_step),
        "--trainer.max_time": "null",
    }
    return [part for flag_value in overrides.items() for part in flag_value]


def _run(cli: FinetuneCLI, argv: list[str]) -> int:
    """The claimed run: fit and evaluate, then the same from scratch if asked (a command line of its own: the first
    one plus :func:`scratch_overrides`, parsed afresh), then the table."""
    root: Path = cli.root
    cfg = cli.config
    results: dict[str, dict] = {}
    first = _variant(cfg.model.init_from)
    m = _fit_and_evaluate(cli, first, root / first, cfg.evaluate_test)
    if m is not None:
        results[first] = m
    if cfg.compare_scratch:
        cli = make_cli([*argv, *scratch_overrides(cli)])  # seeds as the first run did, before building
        m = _fit_and_evaluate(cli, "from_scratch", root / "from_scratch", cfg.evaluate_test)
        if m is not None:
            results["from_scratch"] = m
    if results:
        test = cli.datamodule.pairs("test")
        model, data = cli.model, cli.datamodule.hparams
        sources, references = list(test["source"]), list(test["target"])
        guesses = baseline_predictions(model.baseline, sources)
        baseline = {} if guesses is None else {model.baseline: score(model.metrics, guesses, references)}
        names = {"from_pretrained": "fine-tuned from pretrained", "from_scratch": "fine-tuned from random init"}
        rows = {**baseline, **{names[k]: v for k, v in results.items()}}
        steps = {v["steps"] for v in results.values()}
        table = markdown_table(rows, model.metrics)
        header = (
            f"Task: {data.source_column} -> {data.target_column} ({data.source}); metrics: "
            f"{', '.join(model.metrics)}; baseline: {model.baseline}.\n"
            f"Test split: {len(test)} pairs; beam search {dataclasses.asdict(model.generation)}; "
            f"fine-tune budget: {', '.join(map(str, sorted(steps)))} steps each.\n\n"
        )
        atomic_write_text(root / "results.md", header + table)
        atomic_write_json(root / "metrics.json", {**baseline, **results})
        print(header + table)
        print(f"written: {root / 'results.md'}, {root / 'metrics.json'}, <run>/predictions.jsonl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
