"""The one command-line grammar (jsonargparse: LightningCLI's parser for pretrain/finetune, :class:`CommandParser`
for the others): ``-c/--config`` files, typed underscored options that ``--help`` lists, one-line errors
(``errors.usage_error``), and :class:`~bart_pretrain.paths.InputPath` resolved relative to the config file naming it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from jsonargparse.typing import register_type

from bart_pretrain.data.noise_config import explain
from bart_pretrain.errors import UserError, debugging, usage_error
from bart_pretrain.paths import InputPath, resolve_here


def dump_path(value: object) -> str:
    """An :class:`InputPath` as a config file writes it; anything else is another member of a union's."""
    if not isinstance(value, str):
        raise ValueError(f"not a path: {value!r}")
    return value


# The parser reads a config file from the file's directory, so the deserializer sees paths relative to it.
register_type(InputPath, serializer=dump_path, deserializer=resolve_here)

CONFIG_HELP = "a YAML file of this command's options (repeatable; relative input paths in it: relative to the file)"


class OneLineErrors:
    """A jsonargparse parser whose bad command line or config file is said in one line (``errors.usage_error``),
    not the whole usage (with ``BART_PRETRAIN_DEBUG=1``: jsonargparse's own report); a message about a noise says
    what is allowed (``noise_config.explain``)."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        if debugging() or not self.exit_on_error:
            return super().error(message, ex)
        usage_error(self.prog, explain(missing_file(message)))  # a noise's message: with what is allowed


UNLOADABLE = re.compile(r"""^Parser key "([\w.]+)": Unable to load config ['"]([^'"]+)['"]""")


def missing_file(message: str) -> str:
    """jsonargparse's "Unable to load config" about a sub-config file (``--model.model_config``, ``--data.noise``)
    that does not exist, said as such; any other message as it is."""
    m = UNLOADABLE.match(" ".join(message.split()))
    if m is None or Path(m.group(2)).exists():
        return message
    return f"--{m.group(1)}={m.group(2)!r}: no such file (a relative path in a config file is relative to that file)"


class CommandParser(OneLineErrors, ArgumentParser):
    """The parser of a command that is not a LightningCLI: ``-c/--config`` and ``--print_config`` like theirs."""

    def __init__(self, prog: str | None = None, description: str | None = None, **kwargs: Any):
        super().__init__(prog=prog, description=description, default_env=False, **kwargs)
        self.add_argument("-c", "--config", action=ActionConfigFile, help=CONFIG_HELP)

    def parse_args(self, args: list[str] | None = None, **kwargs: Any) -> Namespace:
        check_config_files(list(sys.argv[1:] if args is None else args))
        return super().parse_args(args, **kwargs)


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
