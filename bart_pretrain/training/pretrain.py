"""`bart-pretrain pretrain`: BART denoising pretraining (Lewis et al. 2020, sec. 2.2) on LightningCLI.

``bart-pretrain pretrain -c configs/pretrain/tiny.yaml [--trainer.max_steps 100 --data.max_tokens 2048 ...]``;
``--ckpt_path last`` resumes at the exact batch. The run directory (``--run_dir``) gets ``checkpoints/last.ckpt``,
CSV and TensorBoard logs, the resolved config, ``report.md`` and ``checkpoints/loss_curves.png``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch

from bart_pretrain.model import Bart
from bart_pretrain.optim import OptimConfig
from bart_pretrain.paths import InputPath
from bart_pretrain.tokenizer import DEFAULT_TOKENIZER
from bart_pretrain.training.initialization import InitConfig, initialize, load_initial_model
from bart_pretrain.training.losses import token_losses
from bart_pretrain.training.model_config import BART_DEFAULTS, ModelConfig, resolve_model_config
from bart_pretrain.training.module import Seq2SeqModule


class PretrainModule(Seq2SeqModule):
    """Denoising autoencoder: reconstruct the original document from its corruption (``--model.*``)."""

    def __init__(
        self,
        model_config: ModelConfig = BART_DEFAULTS,
        tokenizer_path: InputPath | None = DEFAULT_TOKENIZER,
        optim: OptimConfig | dict | None = None,
        init: InitConfig | None = None,
        reconstruction_documents: int = 32,
        reconstruction_beams: int = 4,
        reconstruction_no_repeat_ngram: int = 6,
        on_nonfinite: Literal["stop", "skip"] = "stop",
        compile: bool = False,
        init_from: InputPath | None = None,
        objective_tokens: int = 0,
    ):
        """
        Args:
            model_config: the network's BartConfig fields (a preset: ``--model.model_config configs/model/tiny.yaml``,
                the CLI's default; one field: ``--model.model_config.d_model 64``); vocab_size: the tokenizer's.
                With ``init_from``: that model's (the CLI refuses fields set to other values).
            tokenizer_path: linked from --data.tokenizer_path; the checkpoint carries the tokenizer itself. With
                ``init_from``: null (its tokenizer) or that same tokenizer.
            optim: AdamW, warmup and decay, label smoothing.
            init: how random weights start (position tables, cross-attention); see
                bart_pretrain.training.initialization. Not applied with ``init_from``.
            reconstruction_documents: at every validation, reconstruct this many validation documents and log
                chrF/BLEU against the originals beside the copy baseline (0: off).
            reconstruction_beams: beam width of those reconstructions (1: greedy).
            reconstruction_no_repeat_ngram: those reconstructions never repeat a sequence of this many tokens (0: no
                ban). A small model that has written the last source sentence tends to start an earlier one again;
                6 tokens is longer than the phrases a document repeats, so it stops the run-on, not the text.
            on_nonfinite: NaN/inf loss or gradient: "stop" the run with a message, or "skip" the update.
            compile: ``torch.compile`` the training step (encoder-decoder and loss kernel; inductor, its C++ backend
                on CPU): one compile of ~1 minute at the first step, then faster steps. Eager if unavailable.
            init_from: continue pretraining an existing model: our ``.ckpt`` (its weights only; ``--ckpt_path``
                resumes a run) or a transformers BART directory, with its tokenizer and special ids (the noise's
                ``<mask>`` is its tokenizer's); null: random weights.
            objective_tokens: linked from the data: sentinels the tokenizer gains, with ``<mask_sentence>``, ``[R]``,
                ``[S]``, ``[X]``, after ``<mask>`` (the recipe ends in an objective); 0: the tokenizer as it is.
        """
        super().__init__()
        if isinstance(optim, dict):
            from bart_pretrain.training.guards import check_keys

            check_keys("--model.optim", optim, OptimConfig)
        self.optim = OptimConfig(**optim) if isinstance(optim, dict) else optim or OptimConfig()
        if reconstruction_documents < 0:
            raise ValueError(
                f"--model.reconstruction_documents={reconstruction_documents}: must be >= 0 (0 turns it off)"
            )
        if reconstruction_beams < 1:
            raise ValueError(f"--model.reconstruction_beams={reconstruction_beams}: must be >= 1 (1 is greedy)")
        if reconstruction_no_repeat_ngram < 0:
            raise ValueError(
                f"--model.reconstruction_no_repeat_ngram={reconstruction_no_repeat_ngram}: must be >= 0 (0: no ban)"
            )
        self.on_nonfinite = on_nonfinite
        self.compiled = compile
        self.reconstruction_documents = reconstruction_documents
        self.reconstruction_beams = reconstruction_beams
        self.reconstruction_no_repeat_ngram = reconstruction_no_repeat_ngram
        self.reconstruction_probe = None  # built from the data module at the first validation
        self.last_reconstruction: dict | None = None  # the latest evaluation, with its step, for the report
        self.init_config = InitConfig(**init) if isinstance(init, dict) else init or InitConfig()
        from bart_pretrain.loading import tokenizer_record
        from bart_pretrain.tokenizer import Tokenizer

        given_tokenizer = tokenizer_path
        if init_from is not None:
            model, tokenizer, tokenizer_path = load_initial_model(init_from, tokenizer_path)
            config = model.config
            if objective_tokens and len(tokenizer.sentinel_ids) < objective_tokens:
                raise ValueError(
                    f"--model.init_from {init_from}: the recipe's objective needs the objective tokens (<extra_id_N>, "
                    "[R], [S], [X], <mask_sentence>), which this model's tokenizer lacks; start from a checkpoint "
                    "pretrained with an objective, or from random weights"
                )
        elif tokenizer_path is None:
            raise ValueError("--data.tokenizer_path null: only --model.init_from supplies a tokenizer; pass one")
        else:
            has_tokenizer = os.path.exists(tokenizer_path)
            tokenizer = Tokenizer.from_file(tokenizer_path) if has_tokenizer else None
            if tokenizer is not None and objective_tokens:
                tokenizer = tokenizer.with_objective_tokens(objective_tokens)  # the ids before them do not move
            vocab_size = None if tokenizer is None else tokenizer.vocab_size
            config = resolve_model_config(model_config, vocab_size, tokenizer_path)
            model = initialize(Bart(config), self.init_config)
        self.tokenizer = tokenizer
        # The checkpoint carries its tokenizer (and where it was read from): export and fine-tuning work from anywhere.
        self.tokenizer_record = tokenizer_record(tokenizer, tokenizer_path) if tokenizer is not None else None
        self.save_hyperparameters(
            {
                "model_config": config.to_dict(),
                "tokenizer_path": None if given_tokenizer is None else str(Path(given_tokenizer).absolute()),
                "init_from": init_from,
                "optim": asdict(self.optim),
                "init": asdict(self.init_config),
                "reconstruction_documents": reconstruction_documents,
                "reconstruction_beams": reconstruction_beams,
                "reconstruction_no_repeat_ngram": reconstruction_no_repeat_ngram,
                "on_nonfinite": on_nonfinite,
                "compile": compile,
            }
        )
        self.model = model
        self.pad_id = config.pad_token_id

    # -- validation: accuracy at corrupted and kept positions, reconstruction score beside the copy baseline ------
    def validation_sums(self, batch: dict) -> torch.Tensor:
        """Loss and accuracy sums over all target tokens, then over the tokens the corruption removed (masked,
        deleted, replaced) and over those the source still holds (batches with ``corrupted`` marks)."""
        if "corrupted" not in batch:
            return super().validation_sums(batch)
        target = batch["labels"] != self.pad_id
        model = self.model
        hidden = model.hidden_states(
            batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"], mask=target
        )
        loss, correct = token_losses(hidden, model.shared.weight, model.final_logits_bias[0], batch["labels"][target])
        marks = batch["corrupted"][target]
        sums = []
        for where in (torch.ones_like(marks, dtype=torch.bool), marks == 1, marks == 0):
            sums += [loss[where].double().sum(), where.double().sum(), correct[where].double().sum()]
        return torch.stack(sums)

    def validation_metrics(self, sums: list[float]) -> dict[str, float]:
        metrics = super().validation_metrics(sums)
        if len(sums) == 9:
            for name, (loss, n, correct) in (("corrupted", sums[3:6]), ("kept", sums[6:9])):
                if n:
                    metrics[f"loss_{name}"], metrics[f"token_acc_{name}"] = loss / n, correct / n
        return metrics

    def get_reconstruction_probe(self):
        """The fixed reconstruction set, built from the data module on first use (None: turned off, or no
        validation documents)."""
        if self.reconstruction_probe is None and self.reconstruction_documents:
            from bart_pretrain.training.reconstruction import ReconstructionProbe

            self.reconstruction_probe = ReconstructionProbe.from_datamodule(
                self.trainer.datamodule,
                self.reconstruction_documents,
                self.reconstruction_beams,
                self.reconstruction_no_repeat_ngram,
            )
        return self.reconstruction_probe

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self.full_validation():
            return
        probe = self.get_reconstruction_probe()
        if probe is None:
            return
        from bart_pretrain.training.sharding import full_weights

        with full_weights(self.trainer.strategy):  # generation runs the model outside the step: FSDP needs it whole
            result = probe.evaluate(self.model)
        result["step"] = int(self.trainer.global_step)
        self.last_reconstruction = result
        model, copy = result["model"], result["copy_baseline"]
        self.log_dict(
            {"val/chrf": model["chrf"], "val/bleu": model["bleu"], "val/copy_chrf": copy["chrf"],
             "val/copy_bleu": copy["bleu"]},
        )  # fmt: skip
        points = self.history.setdefault("reconstruction", [])
        if points and points[-1][0] == result["step"]:
            points.pop()
        points.append((result["step"], model["chrf"], model["bleu"], copy["chrf"], copy["bleu"]))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.tokenizer_record is not None:
            from bart_pretrain.loading import TOKENIZER_KEY

            checkpoint[TOKENIZER_KEY] = self.tokenizer_record
