"""Fine-tuning on any (source, target) task, summarization by default (BART paper section 3.3 / fairseq
``examples/bart/README.summarization.md``).

``FinetuneModule`` starts from our pretraining checkpoint or a transformers BART directory (``--model.init_from``) or
from random weights (``--model.init_from null`` + ``--model.model_config``), trains with label-smoothed cross-entropy
normalised by target tokens, AdamW with warmup + decay, and validates with loss and the task's metrics
(``--model.metrics``) of beam search on a fixed subset; ``--model.baseline`` names what the test evaluation compares
with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bart_pretrain.data.batching import shift_tokens_right
from bart_pretrain.evaluate import BEAM_BATCH_TOKENS, generate_texts
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.metrics import MetricName, check_baseline, check_metrics, score
from bart_pretrain.optim import OptimConfig
from bart_pretrain.paths import InputPath
from bart_pretrain.tokenizer import DEFAULT_TOKENIZER
from bart_pretrain.training.initialization import InitConfig, initialize
from bart_pretrain.training.model_config import BART_DEFAULTS, ModelConfig, resolve_model_config
from bart_pretrain.training.module import Seq2SeqModule

DEFAULT_INIT = "runs/pretrain/tiny/checkpoints/last.ckpt"


class MissingCheckpointError(FileNotFoundError):
    pass


class FinetuneModule(Seq2SeqModule):
    """Fine-tuning on (source, target) pairs; loss normalisation, optimizer and schedule from
    ``training.Seq2SeqModule``."""

    def __init__(
        self,
        init_from: InputPath | None = DEFAULT_INIT,
        model_config: ModelConfig = BART_DEFAULTS,
        tokenizer_path: InputPath | None = None,
        optim: OptimConfig | None = None,
        init: InitConfig | None = None,
        dropout: float | None = None,
        generation: GenerationConfig | None = None,
        max_source_length: int = 512,
        beam_batch_tokens: int = BEAM_BATCH_TOKENS,
        metrics: tuple[MetricName, ...] = ("rouge",),
        baseline: str = "lead-1",
        compile: bool = False,
    ):
        """
        Args:
            init_from: our pretraining ``.ckpt`` or a transformers BART directory; null = random weights built
                from ``model_config``.
            model_config: the network's BartConfig fields for random weights (used only when ``init_from`` is null;
                a preset: ``--model.model_config configs/model/tiny.yaml``, the CLI's default; one field:
                ``--model.model_config.d_model 64``); vocab_size: the tokenizer's.
            tokenizer_path: tokenizer.json (or a directory); default: the one ``init_from`` carries (it must be
                that one if both exist), or data/tokenizer/tokenizer.json for random weights.
            optim: AdamW, warmup + decay and label smoothing (default: fairseq's fine-tuning recipe, lr 3e-5,
                500 warmup steps, linear decay, label smoothing 0.1).
            init: how random weights start when ``init_from`` is null (see bart_pretrain.training.initialization); set
                it as the pretraining run did, so that a from-scratch comparison differs only by the pretraining.
            dropout: override the model's dropout for fine-tuning (null keeps the checkpoint's).
            generation: beam-search settings for the validation metrics, test evaluation and `summarize` (saved in
                the checkpoint); default: those ``init_from`` records, else ``GenerationConfig``'s.
            max_source_length: sources are truncated to this many tokens at generation time (linked from
                ``--data.max_source_length``).
            beam_batch_tokens: token budget of one beam-search batch (sources x longest source x beams).
            metrics: the task's metrics, at validation (on ``--data.metric_subset`` pairs) and on the test split:
                rouge (ROUGE-1/2/L), bleu, chrf (sacreBLEU), exact_match.
            baseline: what the test evaluation reports beside the model: lead-K (the first K sentences of the
                source), copy (the source itself) or none.
            compile: ``torch.compile`` the training step (encoder-decoder and loss kernel), as pretraining's
                ``--model.compile``; eager if unavailable.
        """
        super().__init__()
        from bart_pretrain.loading import tokenizer_record

        metrics = list(metrics)
        check_metrics(metrics)
        check_baseline(baseline)
        self.metrics, self.baseline = metrics, baseline
        from bart_pretrain.model import Bart
        from bart_pretrain.tokenizer import Tokenizer

        self.compiled = compile
        self.optim = optim or OptimConfig(lr=3e-5, warmup_steps=500, schedule="linear", label_smoothing=0.1)
        recorded_generation: dict = {}
        if init_from is not None:
            if not Path(init_from).exists():
                hint = (
                    " Run `make pretrain` first." if Path(init_from).absolute() == Path(DEFAULT_INIT).absolute() else ""
                )
                raise MissingCheckpointError(
                    f"--model.init_from: no checkpoint at {init_from} (looked for {Path(init_from).absolute()}).{hint} "
                    "(or pass --model.init_from null to fine-tune from random weights)"
                )
            from bart_pretrain.loading import load_model

            loaded = load_model(init_from, tokenizer_path)
            if loaded.tokenizer is None:
                raise ValueError(
                    f"--model.init_from: {loaded.tokenizer_note}; pass --model.tokenizer_path (the tokenizer it was "
                    "trained with)"
                )
            model, tokenizer, tokenizer_path = loaded.model, loaded.tokenizer, loaded.tokenizer_path
            recorded_generation = loaded.generation
        else:
            tokenizer_path = tokenizer_path or DEFAULT_TOKENIZER
            tokenizer = Tokenizer.from_file(tokenizer_path, "--model.tokenizer_path")
            config = resolve_model_config(model_config, tokenizer.vocab_size, tokenizer_path)
            model = initialize(Bart(config), init or InitConfig())
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
        # The arguments as resolved: the model's config, tokenizer and generation settings are what load_bart and
        # `summarize` need to rebuild this model without its init checkpoint.
        self.save_hyperparameters(
            {
                "init_from": init_from,
                "model_config": dataclasses.asdict(model.config),
                "tokenizer_path": self.tokenizer_record["path"],
                "optim": dataclasses.asdict(self.optim),
                "init": None if init is None else dataclasses.asdict(init),
                "dropout": dropout,
                "generation": dataclasses.asdict(self.generation),
                "max_source_length": max_source_length,
                "beam_batch_tokens": beam_batch_tokens,
                "metrics": metrics,
                "baseline": baseline,
                "compile": compile,
            }
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        from bart_pretrain.loading import TOKENIZER_KEY

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
        subset = getattr(self.trainer.datamodule, "metric_pairs", None)
        sources, references = subset() if subset is not None else ([], [])
        if not sources:
            return
        scores = score(self.metrics, self.generate(sources), references)
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, prog_bar=False)
        self.history.setdefault("val_metrics", []).append((self.trainer.global_step, scores))

    def generate(self, sources: list[str]) -> list[str]:
        """Beam-search outputs with this module's generation settings."""
        return generate_texts(
            self.model,
            self.tokenizer,
            sources,
            self.generation,
            self.hparams.max_source_length,
            self.hparams.beam_batch_tokens,
        )
