"""`bart-pretrain pretrain`: BART denoising pretraining (Lewis et al. 2020, sec. 2.2) on LightningCLI.

``bart-pretrain pretrain -c configs/pretrain/tiny.yaml [--trainer.max_steps 100 --data.max_tokens 2048 ...]``;
``--ckpt_path last`` resumes at the exact batch. The run directory (``--run_dir``) gets ``checkpoints/last.ckpt``,
CSV and TensorBoard logs, the resolved config, ``report.md`` and ``checkpoints/loss_curves.png``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import yaml
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from bart_pretrain.checkpoint import AtomicCheckpointIO, PretrainCheckpoint
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.pretrain_data import PretrainDataModule
from bart_pretrain.training import OptimConfig, Seq2SeqModule


def resolve_model_config(model_config: str | dict, tokenizer_path: str | None) -> BartConfig:
    """A BartConfig from a YAML path or a dict; ``vocab_size`` comes from the tokenizer when the config has none,
    and must agree with it when both exist."""
    if isinstance(model_config, (str, os.PathLike)):
        path = Path(model_config)
        if not path.exists():
            raise FileNotFoundError(f"model.model_config={str(model_config)!r}: no such file (see configs/model/)")
        fields = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        where = str(path)
    else:
        fields, where = dict(model_config), "model.model_config"
    tok_vocab = None
    if tokenizer_path and os.path.exists(tokenizer_path):
        from bart_pretrain.tokenizer import Tokenizer

        tok_vocab = Tokenizer.from_file(tokenizer_path).vocab_size
    if "vocab_size" not in fields:
        if tok_vocab is None:
            raise FileNotFoundError(f"tokenizer {tokenizer_path!r} not found: it sets the vocabulary size of {where}")
        fields["vocab_size"] = tok_vocab
    elif tok_vocab is not None and tok_vocab != fields["vocab_size"]:
        raise ValueError(
            f"{where}: vocab_size={fields['vocab_size']} but tokenizer {tokenizer_path} has {tok_vocab} tokens"
        )
    return BartConfig.from_dict(fields)


class PretrainModule(Seq2SeqModule):
    """Denoising autoencoder: reconstruct the original document from its corruption (``--model.*``)."""

    def __init__(
        self,
        model_config: str | dict = "configs/model/tiny.yaml",
        tokenizer_path: str = "data/tokenizer/tokenizer.json",
        optim: OptimConfig | dict | None = None,
        on_nonfinite: Literal["stop", "skip"] = "stop",
    ):
        """
        Args:
            model_config: a model YAML (configs/model/) or a dict of BartConfig fields; vocab_size is read from
                the tokenizer.
            tokenizer_path: linked from --data.tokenizer_path; saved in the checkpoint for load_bart.
            optim: AdamW, warmup and decay, label smoothing.
            on_nonfinite: NaN/inf loss or gradient: "stop" the run with a message, or "skip" the update.
        """
        super().__init__()
        config = resolve_model_config(model_config, tokenizer_path)
        if isinstance(optim, dict):
            from bart_pretrain.guards import check_keys

            check_keys("--model.optim", optim, OptimConfig)
        self.optim = OptimConfig(**optim) if isinstance(optim, dict) else optim or OptimConfig()
        self.on_nonfinite = on_nonfinite
        self.save_hyperparameters(
            {
                "model_config": config.to_dict(),
                "tokenizer_path": str(tokenizer_path),
                "optim": asdict(self.optim),
                "on_nonfinite": on_nonfinite,
            }
        )
        self.model = Bart(config)
        self.pad_id = config.pad_token_id


class PretrainCLI(LightningCLI):
    """LightningCLI plus: vocab size linked from the data's tokenizer, one ``--run_dir`` for checkpoints and logs,
    atomic checkpoint writes, the end-of-run report, and ``--ckpt_path``."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_dir", type=str, default="runs/pretrain/tiny", help="checkpoints, logs, report")
        parser.add_argument("--checkpoint_every", type=int, default=500, help="write last.ckpt every N steps")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="'last' or a .ckpt path to resume")
        parser.add_argument("--report", type=bool, default=True, help="write the end-of-run report and plot")
        parser.link_arguments("data.tokenizer_path", "model.tokenizer_path")

    def instantiate_trainer(self, **kwargs: Any):
        from bart_pretrain.report import PretrainReport

        run_dir = Path(self.config["run_dir"])
        trainer_config = self._get(self.config_init, "trainer", default={})
        plugins = trainer_config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list) else [plugins]
        kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = [CSVLogger(run_dir, name="logs"), TensorBoardLogger(run_dir, name="tensorboard")]
        kwargs.setdefault("default_root_dir", str(run_dir))
        checkpoint = PretrainCheckpoint(
            str(run_dir / "checkpoints"), every_n_train_steps=self.config["checkpoint_every"]
        )
        callbacks = list(trainer_config.get("callbacks") or [])
        callbacks.append(checkpoint)
        if self.config["report"]:
            callbacks.append(PretrainReport(run_dir, checkpoint.dirpath))
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)


def make_cli(argv: list[str] | None, module_class: type[PretrainModule] = PretrainModule) -> PretrainCLI:
    """Parse ``argv`` (config files, dotted overrides) and instantiate module, data module and trainer."""
    with warnings.catch_warnings():
        # `bart-pretrain pretrain ...` passes its own argv while sys.argv holds the subcommand: expected here.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return PretrainCLI(
            module_class,
            PretrainDataModule,
            args=argv,
            run=False,
            seed_everything_default=1234,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,  # AdamW + schedule come from --model.optim (one config system)
            parser_kwargs={"description": __doc__.splitlines()[0], "default_env": False},
        )


def main(argv: list[str] | None = None) -> int:
    cli = make_cli(argv)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
    return 0 if not cli.trainer.interrupted else 1


if __name__ == "__main__":
    raise SystemExit(main())
