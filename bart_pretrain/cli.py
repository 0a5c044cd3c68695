"""The `bart-pretrain` command: a thin dispatcher to subcommands, each imported only when used.

Every subcommand module exposes ``main(argv: list[str] | None) -> int``. A plug-in noise breaking its contract
(``noising.PluginContractError``, also from a DataLoader worker) or a missing input file ends the command with one
line on stderr and exit code 2, as a configuration error does.
"""

from __future__ import annotations

import importlib
import sys

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
    from noising import PluginContractError

    module = importlib.import_module(SUBCOMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except (PluginContractError, FileNotFoundError) as e:  # the user's plug-in or a missing input: one line, exit 2
        print(f"bart-pretrain {name}: error: {one_line_message(e)}", file=sys.stderr)
        return 2


def one_line_message(error: BaseException) -> str:
    """The message of ``error``; for one re-raised by a DataLoader worker (torch puts the worker's traceback in the
    message, ending in ``module.ErrorClass: message``), the worker's own message."""
    text = str(error)
    if "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        return last[len(prefix) :] if last.startswith(prefix) else last.partition(": ")[2] or last
    return text


if __name__ == "__main__":
    sys.exit(main())
