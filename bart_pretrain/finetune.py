"""Summarization fine-tuning (BART paper section 3.3 / fairseq ``examples/bart/README.summarization.md``).

``SummarizationModule`` starts from our pretraining checkpoint or a transformers BART directory
(``--model.init_from``) or from random weights (``--model.init_from null`` + ``--model.model_config``), trains with
label-smoothed cross-entropy normalised by target tokens, AdamW with warmup + decay, and validates with loss and
ROUGE of beam search on a fixed subset. ``main`` (``bart-pretrain finetune``) fits, then evaluates on the test split
beside lead-1 and, with ``--compare_scratch true``, beside the same fine-tune from random weights.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from pathlib import Path

import datasets
import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import Namespace

from bart_pretrain.evaluate import evaluate_pairs, lead_baseline, markdown_table, summarize_texts
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.initialization import InitConfig, initialize
from bart_pretrain.io import atomic_write_json, atomic_write_text
from bart_pretrain.model import shift_tokens_right
from bart_pretrain.summarization_data import SummarizationDataModule
from bart_pretrain.training import OptimConfig, Seq2SeqModule

DEFAULT_INIT = "runs/pretrain/tiny/checkpoints/last.ckpt"
DEFAULT_TOKENIZER = "data/tokenizer/tokenizer.json"


class MissingCheckpointError(FileNotFoundError):
    pass


def _model_config(spec: str | dict, vocab_size: int):
    """A BartConfig from a model preset (``configs/model/tiny.yaml``) or a dict; vocab size from the tokenizer."""
    from bart_pretrain.model import BartConfig

    if isinstance(spec, str):
        from bart_pretrain.paths import shipped, where_looked

        path = shipped(spec)  # configs/model/tiny.yaml works from any directory
        if not path.is_file():
            raise FileNotFoundError(f"--model.model_config: no such file {spec} ({where_looked(spec)})")
        spec = yaml.safe_load(path.read_text()) or {}
        spec = spec.get("init_args", spec)
    fields = {f.name for f in dataclasses.fields(BartConfig)}
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise ValueError(f"--model.model_config: unknown BartConfig fields {unknown}; valid: {sorted(fields)}")
    return BartConfig(**{**spec, "vocab_size": vocab_size})


class SummarizationModule(Seq2SeqModule):
    """Fine-tuning for summarization; loss normalisation, optimizer and schedule from ``training.Seq2SeqModule``."""

    def __init__(
        self,
        init_from: str | None = DEFAULT_INIT,
        model_config: str | dict | None = "configs/model/tiny.yaml",
        tokenizer_path: str | None = None,
        optim: OptimConfig | None = None,
        init: InitConfig | None = None,
        dropout: float | None = None,
        generation: GenerationConfig | None = None,
        max_source_length: int = 512,
        eval_max_tokens: int = 8192,
    ):
        """
        Args:
            init_from: our pretraining ``.ckpt`` or a transformers BART directory; null = random weights built
                from ``model_config``.
            model_config: model preset (YAML of BartConfig fields, e.g. configs/model/tiny.yaml) or dict; used only
                when ``init_from`` is null. The vocabulary size comes from the tokenizer.
            tokenizer_path: tokenizer.json (or a directory); default: the one ``init_from`` carries (it must be
                that one if both exist), or data/tokenizer/tokenizer.json for random weights.
            optim: AdamW, warmup + decay and label smoothing (default: fairseq's fine-tuning recipe, lr 3e-5,
                500 warmup steps, linear decay, label smoothing 0.1).
            init: how random weights start when ``init_from`` is null (see bart_pretrain.initialization); set it as
                the pretraining run did, so that a from-scratch comparison differs only by the pretraining.
            dropout: override the model's dropout for fine-tuning (null keeps the checkpoint's).
            generation: beam-search settings for validation ROUGE, test evaluation and `summarize` (saved in the
                checkpoint); default: those ``init_from`` records, else ``GenerationConfig``'s.
            max_source_length: documents are truncated to this many tokens at generation time (linked from
                ``--data.max_source_length``).
            eval_max_tokens: source-token budget of one beam-search batch (times the beam width).
        """
        super().__init__()
        from bart_pretrain.checkpoint import tokenizer_record
        from bart_pretrain.model import Bart
        from bart_pretrain.tokenizer import Tokenizer

        self.optim = optim or OptimConfig(lr=3e-5, warmup_steps=500, schedule="linear", label_smoothing=0.1)
        recorded_generation: dict = {}
        if init_from is not None:
            if not Path(init_from).exists():
                hint = " Run `make pretrain` first." if init_from == DEFAULT_INIT else ""
                raise MissingCheckpointError(
                    f"--model.init_from: no checkpoint at {init_from} (looked for {Path(init_from).absolute()}).{hint} "
                    "(or pass --model.init_from null to fine-tune from random weights)"
                )
            from bart_pretrain.checkpoint import load_model

            loaded = load_model(init_from, tokenizer_path)
            if loaded.tokenizer is None:
                raise ValueError(
                    f"--model.init_from: {loaded.tokenizer_note}; pass --model.tokenizer_path (the tokenizer it was "
                    "trained with)"
                )
            model, tokenizer, tokenizer_path = loaded.model, loaded.tokenizer, loaded.tokenizer_path
            recorded_generation = loaded.generation
        else:
            if model_config is None:
                raise ValueError("--model.init_from null needs --model.model_config (e.g. configs/model/tiny.yaml)")
            tokenizer_path = tokenizer_path or DEFAULT_TOKENIZER
            tokenizer = Tokenizer.from_file(tokenizer_path)
            model = initialize(Bart(_model_config(model_config, tokenizer.vocab_size)), init or InitConfig())
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"the model's vocabulary ({model.config.vocab_size}) does not match the tokenizer at "
                f"{tokenizer_path} ({tokenizer.vocab_size}); pass the tokenizer the checkpoint was trained with "
                "(--model.tokenizer_path)"
            )
        if dropout is not None and dropout != model.config.dropout:
            # Dropout rates are fixed at construction: rebuild with the new rate and the same weights.
            state = model.state_dict()
            model = Bart(dataclasses.replace(model.config, dropout=dropout))
            model.load_state_dict(state)
        # Settings given win; else those init_from records (a fine-tuned checkpoint or an export), else the defaults.
        self.generation = generation or GenerationConfig().replace(**recorded_generation)
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer_record = tokenizer_record(tokenizer, tokenizer_path)
        self.pad_id = model.config.pad_token_id
        self.save_hyperparameters()
        # What load_bart and `summarize` need to rebuild this model without its init checkpoint (CONTRACTS.md).
        self.hparams["model_config"] = dataclasses.asdict(model.config)
        self.hparams["tokenizer_path"] = self.tokenizer_record["path"]
        self.hparams["generation"] = dataclasses.asdict(self.generation)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        from bart_pretrain.checkpoint import TOKENIZER_KEY

        checkpoint[TOKENIZER_KEY] = self.tokenizer_record  # the checkpoint carries its tokenizer

    def token_loss(self, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0):
        """(sum of token losses, target tokens, correct tokens); decoder inputs are the labels shifted right."""
        if "decoder_input_ids" not in batch:
            c = self.model.config
            shifted = shift_tokens_right(batch["labels"], c.pad_token_id, c.decoder_start_token_id)
            batch = {**batch, "decoder_input_ids": shifted}
        return super().token_loss(batch, label_smoothing)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer.sanity_checking:
            return
        subset = getattr(self.trainer.datamodule, "rouge_subset", None)
        documents, references = subset() if subset is not None else ([], [])
        if not documents:
            return
        from bart_pretrain.metrics import rouge

        scores = rouge(self.summarize(documents), references)
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, prog_bar=False)
        self.history.setdefault("val_rouge", []).append((self.trainer.global_step, scores))

    def summarize(self, documents: list[str]) -> list[str]:
        """Beam-search summaries with this module's generation settings."""
        return summarize_texts(
            self.model,
            self.tokenizer,
            documents,
            self.generation,
            self.hparams.max_source_length,
            self.hparams.eval_max_tokens,
        )


# --- the command ----------------------------------------------------------------------------------------------
def _variant(init_from: str | None) -> str:
    return "from_pretrained" if init_from is not None else "from_scratch"


# Input paths of a fine-tuning config, resolved by bart_pretrain.paths (outputs such as default_root_dir are not).
FINETUNE_INPUTS = (
    "model.init_from",
    "model.model_config",
    "model.tokenizer_path",
    "data.source",
    "data.train_file",
    "data.validation_file",
    "data.test_file",
    "data.tokenizer_file",
)


def _cli_class():
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningCLI

    class FinetuneCLI(LightningCLI):
        """Each run (from pretrained, from scratch) lands in ``<trainer.default_root_dir>/<variant>/``."""

        def add_arguments_to_parser(self, parser):
            parser.add_argument(
                "--compare_scratch",
                type=bool,
                default=False,
                help="also run the same fine-tune from random weights (same architecture, data and budget) and "
                "report both beside lead-1",
            )
            parser.add_argument(
                "--evaluate_test",
                type=bool,
                default=True,
                help="after fitting, summarize the test split with beam search and write predictions and ROUGE",
            )
            parser.add_argument(
                "--torch_threads",
                type=int | None,
                default=None,
                help="torch intra-op threads (null: torch's default, one per core). 1 is far faster on a CPU shared "
                "with other jobs, where threads spin-waiting on each other stall every op",
            )
            parser.link_arguments("data.max_source_length", "model.max_source_length")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults(
                {"checkpoint.filename": "best", "checkpoint.monitor": "val/loss", "checkpoint.save_last": True}
            )

        def parse_arguments(self, parser, args) -> None:
            self.argv = [] if isinstance(args, (dict, Namespace)) else list(sys.argv[1:] if args is None else args)
            super().parse_arguments(parser, args)

        def before_instantiate_classes(self):
            from bart_pretrain.paths import resolve_config_inputs

            resolve_config_inputs(self.config, FINETUNE_INPUTS, self.argv)  # paths in a -c file: relative to it
            if self.config.torch_threads is not None:
                torch.set_num_threads(self.config.torch_threads)
            self.root = Path(self.config.trainer.default_root_dir or "runs/finetune")
            from bart_pretrain.io import clean_stale_tmp

            clean_stale_tmp(self.root, recursive=True)  # what killed writes of predictions, metrics, ... left
            self.default_logger = self.config.trainer.logger in (None, True)
            self.place_run(_variant(self.config.model.init_from))

        def instantiate_trainer(self, **kwargs):
            from bart_pretrain.progress import with_progress_bar

            trainer_config = self._get(self.config_init, "trainer", default={})
            callbacks = list(kwargs.get("callbacks") or trainer_config.get("callbacks") or [])
            kwargs["callbacks"] = with_progress_bar(trainer_config, callbacks)  # steps of max_steps
            return super().instantiate_trainer(**kwargs)

        def place_run(self, variant: str) -> None:
            run_dir = str(self.root / variant)
            self.config.trainer.default_root_dir = run_dir
            if self.default_logger:
                self.config.trainer.logger = {
                    "class_path": "pytorch_lightning.loggers.CSVLogger",
                    "init_args": {"save_dir": run_dir, "name": "", "version": ""},
                }

    return FinetuneCLI


def _fit_and_evaluate(cli, variant: str, run_dir: Path, evaluate_test: bool) -> dict | None:
    model: SummarizationModule = cli.model
    data: SummarizationDataModule = cli.datamodule
    data.attach_tokenizer(model.tokenizer)
    t0 = time.perf_counter()
    cli.trainer.fit(model, datamodule=data)
    fit_seconds = time.perf_counter() - t0
    if not evaluate_test or cli.trainer.global_rank != 0:
        return None
    test = data.pairs("test")
    print(
        f"[{variant}] fitted {cli.trainer.global_step} steps in {fit_seconds:.0f} s; beam search on "
        f"{len(test)} test documents ...",
        file=sys.stderr,
    )
    metrics = evaluate_pairs(
        model.model,
        model.tokenizer,
        list(test["document"]),
        list(test["summary"]),
        model.generation,
        out_dir=run_dir,
        max_source_length=model.hparams.max_source_length,
        max_tokens=model.hparams.eval_max_tokens,
    )
    metrics.update(
        variant=variant,
        init_from=model.hparams.init_from,
        steps=cli.trainer.global_step,
        fit_seconds=round(fit_seconds, 1),
    )
    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    datasets.disable_progress_bars()
    try:
        cli = _cli_class()(
            SummarizationModule,
            SummarizationDataModule,
            args=argv,
            run=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "bart-pretrain finetune", "description": __doc__},
        )
    except MissingCheckpointError as e:
        print(f"bart-pretrain finetune: {e}", file=sys.stderr)
        return 2
    cfg = cli.config
    if cfg.compare_scratch and cfg.model.init_from is None:
        print("bart-pretrain finetune: --compare_scratch true needs --model.init_from (a checkpoint)", file=sys.stderr)
        return 2
    root: Path = cli.root
    results: dict[str, dict] = {}
    first = _variant(cfg.model.init_from)
    m = _fit_and_evaluate(cli, first, root / first, cfg.evaluate_test)
    if m is not None:
        results[first] = m
    if cfg.compare_scratch:
        # Same architecture, tokenizer, data, seed and step budget; only the initial weights differ.
        scratch = copy.deepcopy(cfg)
        scratch.model.init_from = None
        scratch.model.model_config = dataclasses.asdict(cli.model.model.config)
        # The very tokenizer of the first run (the file its checkpoint was read from may have moved since).
        cli.model.tokenizer.save(root / "tokenizer.json")
        scratch.model.tokenizer_path = str(root / "tokenizer.json")
        # If a --trainer.max_time guard stopped the first run early, the second runs exactly as many steps, on the
        # same learning-rate schedule (its length fixed to the first run's), with no time guard of its own.
        steps, schedule = cli.trainer.global_step, cli.model.total_steps()
        scratch.trainer.max_steps, scratch.trainer.max_time = steps, None
        scratch.model.optim = Namespace(**{**dataclasses.asdict(cli.model.optim), "total_steps": schedule})
        if scratch.seed_everything is not None:
            pl.seed_everything(scratch.seed_everything, workers=True)
        cli.config = scratch
        cli.place_run("from_scratch")
        cli.instantiate_classes()
        m = _fit_and_evaluate(cli, "from_scratch", root / "from_scratch", cfg.evaluate_test)
        if m is not None:
            results["from_scratch"] = m
    if results:
        test = cli.datamodule.pairs("test")
        lead = lead_baseline(list(test["document"]), list(test["summary"]))
        names = {"from_pretrained": "fine-tuned from pretrained", "from_scratch": "fine-tuned from random init"}
        rows = {"lead-1": lead, **{names[k]: v for k, v in results.items()}}
        steps = {v["steps"] for v in results.values()}
        table = markdown_table(rows)
        header = (
            f"Test split: {len(test)} pairs; beam search {dataclasses.asdict(cli.model.generation)}; "
            f"fine-tune budget: {', '.join(map(str, sorted(steps)))} steps each.\n\n"
        )
        atomic_write_text(root / "results.md", header + table)
        atomic_write_json(root / "metrics.json", {"lead-1": lead, **results})
        print(header + table)
        print(f"written: {root / 'results.md'}, {root / 'metrics.json'}, <run>/predictions.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
