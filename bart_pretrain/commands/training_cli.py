"""The LightningCLI both training commands subclass (``bart-pretrain pretrain``, ``bart-pretrain finetune``): one
style, at module level. It adds ``--torch_threads`` and ``--overwrite``, starts ``--model.model_config`` from the
shipped preset (:data:`DEFAULT_MODEL_CONFIG`) and finds preset files as every other input path is found
(``bart_pretrain.paths``), resolves the command's input paths before anything is built, reports bad input as
:class:`~bart_pretrain.errors.UserError`, claims the run directory (:meth:`TrainingCLI.claimed`: a lock, never
overwriting a run), stops on SIGTERM/SIGINT with a checkpoint, and puts the step progress bar on the trainer.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace, set_parsing_settings
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from bart_pretrain.data.noise_config import explain
from bart_pretrain.errors import Interrupted, UserError, debugging, reading_input, usage_error
from bart_pretrain.io import DirectoryLock, check_writable_dir, move_aside
from bart_pretrain.paths import resolve_config_inputs, resolve_input, shipped, where_looked
from bart_pretrain.training import sharding  # noqa: F401  (registers --trainer.strategy sharded)
from bart_pretrain.training.checkpoints import StopOnSignal
from bart_pretrain.training.guards import check_new_run
from bart_pretrain.training.model_config import DEFAULT_MODEL_CONFIG

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


class TrainingCLI(LightningCLI):
    """``INPUTS``: the dotted keys of the command's input paths, resolved by ``bart_pretrain.paths`` (a path in a
    ``-c`` file relative to that file, shipped ``configs/...`` names in the repository); outputs are never moved."""

    INPUTS: tuple[str, ...] = ()
    RUN_DIR_FLAG = "--run_dir"
    """The flag naming the directory a run writes (its checkpoints), for messages."""
    RESUME_HINT: str | None = "resume it with --ckpt_path last"
    """How to continue a stopped or finished run of this command (None: it cannot be resumed)."""

    def __init__(self, model_class: type, datamodule_class: type, args: list[str] | None, prog: str, **kwargs: Any):
        """Parse ``args`` (config files, dotted overrides; None: ``sys.argv``) and build model, data and trainer;
        the caller runs them. The optimizer and schedule come from ``--model.optim`` (one config system)."""
        set_parsing_settings(docstring_parse_attribute_docstrings=True)  # config dataclasses' field docs in --help
        self.stop_on_signal = StopOnSignal(self.RESUME_HINT or "the run does not resume: start it again")
        # A bad value, file or combination of trainer flags found while building model, data and trainer is the
        # user's: one line (bart_pretrain.cli), not a traceback; OneLineParser says a parse error in one line.
        with warnings.catch_warnings(), reading_input(), _misconfiguration_is_user_error():
            # `bart-pretrain <command> ...` passes its own argv while sys.argv holds the subcommand: expected here.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            super().__init__(
                model_class,
                datamodule_class,
                args=args,
                run=False,
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                parser_kwargs={"prog": prog, "description": sys.modules[type(self).__module__].__doc__,
                               "default_env": False},
                parser_class=OneLineParser,
                **kwargs,
            )  # fmt: skip

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help=f"start over in a {self.RUN_DIR_FLAG} that holds a run: its contents are first moved to a sibling "
            "<dir>.old-<time> (nothing is deleted). Without it, such a directory is refused",
        )
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=None,
            help="torch intra-op threads (null: torch's default, one per core). 1 is far faster on a CPU shared "
            "with other jobs, where threads spin-waiting on each other stall every op",
        )
        find_config_files_as_inputs(parser, "model.model_config")
        preset = shipped(DEFAULT_MODEL_CONFIG)
        parser.set_defaults({"model.model_config": yaml.safe_load(preset.read_text(encoding="utf-8"))})

    def parse_arguments(self, parser, args) -> None:
        # The command line as given, for bart_pretrain.paths to tell which -c file set each input path.
        self.argv = [] if isinstance(args, (dict, Namespace)) else list(sys.argv[1:] if args is None else args)
        check_config_files(self.argv)
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        if self.config["torch_threads"] is not None and self.config["torch_threads"] < 1:
            raise UserError(f"--torch_threads={self.config['torch_threads']}: must be >= 1 (null: torch's default)")
        if self.config["torch_threads"] is not None:
            torch.set_num_threads(self.config["torch_threads"])
        resolve_config_inputs(self.config, self.INPUTS, self.argv)

    def instantiate_classes(self) -> None:
        with reading_input(), _misconfiguration_is_user_error():
            super().instantiate_classes()
            self.check_lengths()

    def check_lengths(self) -> None:
        """Raise if the data's sequence lengths do not fit the model (see ``training.guards.check_lengths``)."""

    def instantiate_trainer(self, **kwargs: Any):
        from bart_pretrain.training.progress import with_progress_bar

        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(kwargs.get("callbacks") or trainer_config.get("callbacks") or [])
        callbacks.append(self.stop_on_signal)
        kwargs["callbacks"] = with_progress_bar(trainer_config, callbacks)  # steps of max_steps, not "Epoch 0/-2"
        try:
            return super().instantiate_trainer(**kwargs)
        except ModuleNotFoundError as e:  # an accelerator, strategy or logger whose package this machine lacks
            if debugging():
                raise
            raise UserError(f"--trainer: {e}") from e

    # -- the run directory -------------------------------------------------------------------------------------
    def run_dir(self) -> Path:
        """The directory this run writes (checkpoints, logs, results)."""
        raise NotImplementedError

    def resuming(self) -> bool:
        """Whether this run continues the run in :meth:`run_dir` (it may then write there)."""
        return False

    @contextlib.contextmanager
    def claimed(self) -> Iterator[Path]:
        """Hold :meth:`run_dir` for this run: refuse it if another run holds it (a lock, released on exit, also when
        the process is killed) or if it holds a run this one would overwrite (unless ``--overwrite true``: moved
        aside, saying where). Only global rank 0 claims; the other ranks of a DDP run write nothing there."""
        run_dir = self.run_dir()
        if rank_zero_only.rank != 0:
            yield run_dir
            return
        check_writable_dir(run_dir, self.RUN_DIR_FLAG)
        if self.config["overwrite"] and self.resuming():
            raise UserError("--overwrite true starts a new run, --ckpt_path resumes one: choose one")
        with DirectoryLock(run_dir, self.RUN_DIR_FLAG):
            if self.config["overwrite"]:
                moved = move_aside(run_dir)
                if moved is not None:
                    print(f"--overwrite true: moved the previous contents of {run_dir} to {moved}", file=sys.stderr)
            elif not self.resuming():
                check_new_run(run_dir, self.RUN_DIR_FLAG, self.RESUME_HINT)
            yield run_dir

    def fit(self, **kwargs: Any) -> None:
        """``trainer.fit`` of the model and data; a SIGTERM Lightning saw before training started (while it read the
        data or validated) is :class:`~bart_pretrain.errors.Interrupted` too, not Lightning's exit status 0."""
        try:
            self.trainer.fit(self.model, datamodule=self.datamodule, **kwargs)
        except SIGTERMException:
            raise Interrupted(
                signal.SIGTERM, "stopped by SIGTERM before the first training step; nothing saved"
            ) from None


def check_config_files(argv: list[str]) -> None:
    """Raise if a ``-c`` file of ``argv`` is not YAML, naming it and the place (jsonargparse names neither)."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name not in ("-c", "--config"):
            continue
        value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        path = Path(value)
        if not path.is_file():
            continue  # a YAML string, or a missing file jsonargparse names
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise UserError(f"-c {path}: not UTF-8 text (invalid byte at offset {e.start})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise UserError(f"-c {path}: not valid YAML ({getattr(e, 'problem', None) or e}{where})") from None


class OneLineParser(LightningArgumentParser):
    """LightningCLI's parser, with a bad command line or config file said in one line (``errors.usage_error``)
    instead of the whole usage (with ``BART_PRETRAIN_DEBUG=1``: jsonargparse's own report)."""

    def error(self, message: str, ex: Exception | None = None):
        if debugging() or not self.exit_on_error:
            super().error(message, ex)
        usage_error(self.prog, explain(message))  # a noise's message: with what is allowed


@contextlib.contextmanager
def _misconfiguration_is_user_error() -> Iterator[None]:
    """Lightning's ``MisconfigurationException`` while building the trainer (``--trainer.accelerator gpu`` without
    one, a bad strategy, ...) names the user's trainer flags: a :class:`UserError`."""
    try:
        yield
    except MisconfigurationException as e:
        if debugging():
            raise
        raise UserError(str(e)) from e


def find_config_files_as_inputs(parser, dest: str) -> None:
    """Let the sub-config option ``dest`` (a dataclass group, such as ``--model.model_config``) find a file as input
    paths are found. jsonargparse looks for a file named in a config file only beside that file; ours write shipped
    names from the repository root (``model_config: configs/model/tiny.yaml``), which then name the repository's."""
    action = next(a for a in parser._actions if a.dest == dest and hasattr(a, "_load_config"))
    load = action._load_config

    def load_found(value: Any, parser_) -> Any:
        try:
            return load(value, parser_)
        except TypeError:
            if not isinstance(value, str) or not value.endswith(CONFIG_SUFFIXES) or Path(value).is_file():
                raise  # not a file name, or a file that is there: what is wrong is inside it
            found = resolve_input(value)
            if found == value:
                raise TypeError(f"--{dest}={value!r}: no such file ({where_looked(value)})") from None
            return load(found, parser_)

    action._load_config = load_found
