"""The LightningCLI both training commands subclass (``bart-pretrain pretrain``, ``bart-pretrain finetune``): one
style, at module level. It adds ``--torch_threads``, starts ``--model.model_config`` from the shipped preset
(:data:`DEFAULT_MODEL_CONFIG`) and finds preset files as every other input path is found (``bart_pretrain.paths``),
resolves the command's input paths before anything is built, and puts the step progress bar on the trainer.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import torch
import yaml
from jsonargparse import Namespace, set_parsing_settings
from pytorch_lightning.cli import LightningCLI

from bart_pretrain.paths import resolve_config_inputs, resolve_input, shipped, where_looked
from bart_pretrain.training.model_config import DEFAULT_MODEL_CONFIG

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


class TrainingCLI(LightningCLI):
    """``INPUTS``: the dotted keys of the command's input paths, resolved by ``bart_pretrain.paths`` (a path in a
    ``-c`` file relative to that file, shipped ``configs/...`` names in the repository); outputs are never moved."""

    INPUTS: tuple[str, ...] = ()

    def __init__(self, model_class: type, datamodule_class: type, args: list[str] | None, prog: str, **kwargs: Any):
        """Parse ``args`` (config files, dotted overrides; None: ``sys.argv``) and build model, data and trainer;
        the caller runs them. The optimizer and schedule come from ``--model.optim`` (one config system)."""
        set_parsing_settings(docstring_parse_attribute_docstrings=True)  # config dataclasses' field docs in --help
        with warnings.catch_warnings():
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
                **kwargs,
            )  # fmt: skip

    def add_arguments_to_parser(self, parser) -> None:
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
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        if self.config["torch_threads"] is not None:
            torch.set_num_threads(self.config["torch_threads"])
        resolve_config_inputs(self.config, self.INPUTS, self.argv)

    def instantiate_trainer(self, **kwargs: Any):
        from bart_pretrain.training.progress import with_progress_bar

        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(kwargs.get("callbacks") or trainer_config.get("callbacks") or [])
        kwargs["callbacks"] = with_progress_bar(trainer_config, callbacks)  # steps of max_steps, not "Epoch 0/-2"
        return super().instantiate_trainer(**kwargs)


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
            if not isinstance(value, str) or not value.endswith(CONFIG_SUFFIXES):
                raise
            found = resolve_input(value)
            if found == value:
                raise TypeError(f"--{dest}={value!r}: no such file ({where_looked(value)})") from None
            return load(found, parser_)

    action._load_config = load_found
