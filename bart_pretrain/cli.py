"""The `bart-pretrain` command: a thin dispatcher to subcommands, each imported only when used.

Every subcommand module exposes ``main(argv: list[str] | None) -> int``.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "build-data": ("bart_pretrain.data.build", "build the default offline corpus, summarization pairs and tokenizer"),
    "train-tokenizer": ("bart_pretrain.tokenizer", "train a byte-level BPE tokenizer on text files"),
    "noise-preview": ("bart_pretrain.noise_preview", "show a text before and after a noise recipe"),
    "pretrain": ("bart_pretrain.pretrain", "pretrain a BART by denoising (LightningCLI)"),
    "finetune": ("bart_pretrain.finetune", "fine-tune a checkpoint for summarization (LightningCLI)"),
    "summarize": ("bart_pretrain.summarize", "summarize documents from stdin or a file with a checkpoint"),
    "export-hf": ("bart_pretrain.hf", "export a checkpoint to a directory transformers can load"),
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
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
