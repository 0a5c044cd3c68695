"""The `bart-pretrain` command: a thin dispatcher to subcommands, each imported only when used.

Every subcommand module exposes ``main(argv: list[str] | None) -> int``. Whatever is the user's, not the program's,
ends the command with one line on stderr, ``bart-pretrain <command>: error: <what, the value, what is allowed>``, and
exit code 2 (:func:`user_error_line` says which exceptions those are; a bad command line or config file is reported
the same way by the command's parser, ``bart_pretrain.errors.usage_error``); a stop signal, after its checkpoint, with
one line and 128 + the signal number. Every other exception is a bug and keeps its traceback; so does everything with
``BART_PRETRAIN_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import sys

from bart_pretrain.errors import Interrupted, UserError, debugging, environment_error, os_error_line

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "build-data": (
        "bart_pretrain.commands.build_data",
        "build the default offline corpus, summarization pairs and tokenizer",
    ),
    "train-tokenizer": ("bart_pretrain.commands.train_tokenizer", "train a byte-level BPE tokenizer on text files"),
    "noise-preview": ("bart_pretrain.commands.noise_preview", "show a text before and after a noise recipe"),
    "pretrain": ("bart_pretrain.commands.pretrain", "pretrain a BART by denoising (LightningCLI)"),
    "finetune": ("bart_pretrain.commands.finetune", "fine-tune a checkpoint for summarization (LightningCLI)"),
    "ablate": ("bart_pretrain.commands.ablate", "rank noise recipes: each pretrained and fine-tuned at equal budget"),
    "summarize": ("bart_pretrain.commands.summarize", "summarize documents from stdin or a file with a checkpoint"),
    "export-hf": ("bart_pretrain.commands.export_hf", "export a checkpoint to a directory transformers can load"),
}

# FileNotFoundError & co. raised by our own checks with a message of their own (no errno): a missing input path.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    more = "`bart-pretrain <command> --help` for more."
    return f"usage: bart-pretrain <command> [options]\n\ncommands:\n{rows}\n\n{more}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"bart-pretrain: unknown command {name!r}; choose from: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        return int(module.main(rest) or 0)
    except Interrupted as e:
        if debugging():
            raise
        print(f"bart-pretrain {name}: {one_line_message(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # outside training (training saves and raises Interrupted)
        if debugging():
            raise
        print(f"bart-pretrain {name}: interrupted (SIGINT); nothing was saved", file=sys.stderr)
        return 130
    except Exception as e:
        line = user_error_line(e)
        if line is None or debugging():
            raise
        print(f"bart-pretrain {name}: error: {line}", file=sys.stderr)
        return 2


def user_error_line(error: BaseException) -> str | None:
    """The one line to show for ``error`` if it is the user's (else None: a bug, shown with its traceback):
    :class:`~bart_pretrain.errors.UserError`; a noise plug-in breaking its
    contract (``noising.PluginContractError``, also from a DataLoader worker); an ``OSError`` about the user's
    paths or machine (missing, unreadable or unwritable, not a directory, read-only, disk full)."""
    from noising import PluginContractError

    if isinstance(error, (UserError, PluginContractError)):
        return one_line_message(error)
    if environment_error(error):
        return one_line(os_error_line(error))
    if isinstance(error, PATH_ERRORS) and error.errno is None:
        return one_line_message(error)
    return None


def one_line_message(error: BaseException) -> str:
    """The message of ``error`` on one line; for one re-raised by a DataLoader worker (torch puts the worker's
    traceback in the message, ending in ``module.ErrorClass: message``), the worker's own message."""
    text = str(error)
    if "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        return last[len(prefix) :] if last.startswith(prefix) else last.partition(": ")[2] or last
    return one_line(text)


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces, each stripped (jsonargparse indents nested reasons)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
