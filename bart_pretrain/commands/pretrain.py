"""`bart-pretrain pretrain`: BART denoising pretraining (Lewis et al. 2020, sec. 2.2) on LightningCLI.

``bart-pretrain pretrain -c configs/pretrain/tiny.yaml [--trainer.max_steps 100 --data.max_tokens 2048 ...]``;
``--ckpt_path last`` resumes at the exact batch. The run directory (``--run_dir``) gets ``checkpoints/last.ckpt``,
CSV and TensorBoard logs, the resolved config, ``report.md`` and ``checkpoints/loss_curves.png``. A run directory that
holds a run is resumed (``--ckpt_path last``) or started over (``--overwrite true``), never silently overwritten;
SIGTERM/SIGINT write ``last.ckpt`` at the end of the current step and exit 143/130.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

import noising
from bart_pretrain.commands.training_cli import TrainingCLI
from bart_pretrain.data.pretrain_module import PretrainDataModule
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.paths import REPO
from bart_pretrain.tokenizer import DEFAULT_TOKENIZER
from bart_pretrain.training.checkpoints import AtomicCheckpointIO, PretrainCheckpoint
from bart_pretrain.training.guards import check_lengths, runs_in
from bart_pretrain.training.initialization import check_init_config
from bart_pretrain.training.pretrain import PretrainModule
from bart_pretrain.training.sharding import resumable

SHIPPED_TOKENIZER = str(REPO / DEFAULT_TOKENIZER)
"""The default tokenizer as the shipped configs name it: with ``--model.init_from`` it counts as left out."""


class PretrainCLI(TrainingCLI):
    """:class:`TrainingCLI` plus: the tokenizer path linked from the data to the model (which reads the vocabulary
    size from it), one ``--run_dir`` for checkpoints and logs, atomic checkpoint writes, the end-of-run report, and
    ``--ckpt_path``."""

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--run_dir", type=str, default="runs/pretrain/tiny", help="checkpoints, logs, report")
        parser.add_argument("--checkpoint_every", type=int, default=500, help="write last.ckpt every N steps")
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="resume: 'last' (the run directory's checkpoints/last.ckpt) or a .ckpt path in it",
        )
        parser.add_argument("--report", type=bool, default=True, help="write the end-of-run report and plot")
        parser.link_arguments("data.tokenizer_path", "model.tokenizer_path")
        noising.registry.installed()  # installed plug-ins imported before parsing: their class names then resolve
        # A recipe ending in an objective adds its tokens to the tokenizer: the model's vocabulary follows.
        parser.link_arguments("data.objective_tokens", "model.objective_tokens", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        # With --model.init_from the model and its tokenizer come from there: what the config files and flags set
        # differently from the defaults is checked against it (refused if it differs), the rest is not used.
        self.init_given: dict[str, Any] = {}
        if self.config["model.init_from"] is not None:
            defaults = self.parser.get_defaults()
            preset, fields = defaults["model.model_config"], self.config["model.model_config"]
            self.init_given = {k: v for k, v in vars(fields).items() if k != "__path__" and v != preset.get(k)}
            if self.config["data.tokenizer_path"] in (defaults["data.tokenizer_path"], SHIPPED_TOKENIZER):
                self.config["data.tokenizer_path"] = self.config["model.tokenizer_path"] = None  # the model's
        super().before_instantiate_classes()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        init_from = self.config["model.init_from"]
        if init_from is not None:
            with reading_input():
                check_init_config(self.model.model.config, self.init_given, init_from)
            self.datamodule.attach_tokenizer(self.model.tokenizer)

    def check_lengths(self) -> None:
        check_lengths(
            self.model.model.config.max_position_embeddings, **{"--data.max_length": self.datamodule.max_length}
        )

    def run_dir(self) -> Path:
        return Path(self.config["run_dir"])

    def resuming(self) -> bool:
        return self.config["ckpt_path"] is not None

    def resume_path(self) -> str | None:
        """``--ckpt_path`` as a file: ``last`` is ``<run_dir>/checkpoints/last.ckpt``, which must exist (Lightning would
        start a new run over the directory instead; a sharded one is a directory, and a sharded save killed between
        its renames left the previous one at ``last.ckpt.previous``, resumed from there); a checkpoint of another
        run directory would have this run overwrite the checkpoints of that one, so it is refused while this one
        holds any."""
        value = self.config["ckpt_path"]
        if value is None:
            return None
        last = self.run_dir() / "checkpoints" / "last.ckpt"
        if value == "last":
            found = resumable(last)
            if found is None:
                raise UserError(
                    f"--ckpt_path last: no checkpoint to resume at {last.absolute()} (--run_dir {self.run_dir()}); "
                    "leave --ckpt_path out to start a new run, or give the --run_dir of the run to resume"
                )
            return str(found)
        outside = not Path(value).absolute().is_relative_to(self.run_dir().absolute())
        if outside and runs_in(self.run_dir()):
            raise UserError(
                f"--ckpt_path {value}: a checkpoint of another run, while --run_dir {self.run_dir()} holds a run of "
                "its own that resuming there would overwrite; give the --run_dir the checkpoint belongs to, or an "
                "empty one"
            )
        return value

    def instantiate_trainer(self, **kwargs: Any):
        from bart_pretrain.training.report import PretrainReport

        run_dir = Path(self.config["run_dir"])
        trainer_config = self.config_init.get("trainer", {})
        plugins = trainer_config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list) else [plugins]
        kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = [CSVLogger(run_dir, name="logs"), TensorBoardLogger(run_dir, name="tensorboard")]
        kwargs.setdefault("default_root_dir", str(run_dir))
        checkpoint = PretrainCheckpoint(
            str(run_dir / "checkpoints"), every_n_train_steps=self.config["checkpoint_every"]
        )
        callbacks = [*(trainer_config.get("callbacks") or []), checkpoint]
        if self.config["report"]:
            callbacks.append(PretrainReport(run_dir, checkpoint.dirpath))
        return super().instantiate_trainer(**kwargs, callbacks=callbacks)


def make_cli(argv: list[str] | None, module_class: type[PretrainModule] = PretrainModule) -> PretrainCLI:
    """Parse ``argv`` (config files, dotted overrides) and instantiate module, data module and trainer."""
    return PretrainCLI(module_class, PretrainDataModule, argv, "bart-pretrain pretrain", seed_everything_default=1234)


def main(argv: list[str] | None = None) -> int:
    cli = make_cli(argv)
    ckpt_path = cli.resume_path()
    with cli.claimed():
        cli.fit(ckpt_path=ckpt_path)
    return 0 if not cli.trainer.interrupted else 1


if __name__ == "__main__":
    raise SystemExit(main())
