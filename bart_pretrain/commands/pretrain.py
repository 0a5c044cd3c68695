"""`bart-pretrain pretrain`: BART denoising pretraining (Lewis et al. 2020, sec. 2.2) on LightningCLI.

``bart-pretrain pretrain -c configs/pretrain/tiny.yaml [--trainer.max_steps 100 --data.max_tokens 2048 ...]``;
``--ckpt_path last`` resumes at the exact batch. The run directory (``--run_dir``) gets ``checkpoints/last.ckpt``,
CSV and TensorBoard logs, the resolved config, ``report.md`` and ``checkpoints/loss_curves.png``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from bart_pretrain.data.pretrain_module import PretrainDataModule
from bart_pretrain.training.checkpoints import AtomicCheckpointIO, PretrainCheckpoint
from bart_pretrain.training.pretrain import PretrainModule

# Input paths of a pretraining config, resolved by bart_pretrain.paths (outputs such as --run_dir are not).
PRETRAIN_INPUTS = ("model.model_config", "data.train_files", "data.val_files", "data.tokenizer_path", "data.noise")


class PretrainCLI(LightningCLI):
    """LightningCLI plus: vocab size linked from the data's tokenizer, one ``--run_dir`` for checkpoints and logs,
    atomic checkpoint writes, the end-of-run report, and ``--ckpt_path``."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_dir", type=str, default="runs/pretrain/tiny", help="checkpoints, logs, report")
        parser.add_argument("--checkpoint_every", type=int, default=500, help="write last.ckpt every N steps")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="'last' or a .ckpt path to resume")
        parser.add_argument("--report", type=bool, default=True, help="write the end-of-run report and plot")
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=None,
            help="torch intra-op threads (null: torch's default, one per core)",
        )
        parser.link_arguments("data.tokenizer_path", "model.tokenizer_path")

    def parse_arguments(self, parser, args) -> None:
        self.argv = [] if isinstance(args, (dict, Namespace)) else list(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        from bart_pretrain.paths import resolve_config_inputs

        if self.config["torch_threads"] is not None:
            torch.set_num_threads(self.config["torch_threads"])
        resolve_config_inputs(self.config, PRETRAIN_INPUTS, self.argv)  # a -c file's paths: relative to it
        self.config["model.tokenizer_path"] = self.config["data.tokenizer_path"]  # linked: follows the resolved path

    def instantiate_trainer(self, **kwargs: Any):
        from bart_pretrain.training.report import PretrainReport

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
        from bart_pretrain.training.progress import with_progress_bar

        kwargs["callbacks"] = with_progress_bar(trainer_config, callbacks)  # steps of max_steps, not "Epoch 0/-2"
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
