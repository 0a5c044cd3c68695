"""Run every benchmark section in turn: noising throughput, then model training/generation speed (CPU). The `gpu`
section runs only when named, with its own options: `python -m bart_pretrain.bench gpu --help`."""

from __future__ import annotations

import argparse
import importlib
import sys

SECTIONS = {
    "noise": "bart_pretrain.bench.noise",
    "model": "bart_pretrain.bench.model",
}
GPU = "bart_pretrain.bench.gpu"  # training/beam speed and MFU on a GPU against transformers: not in the default run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gpu"]:
        return importlib.import_module(GPU).main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bart_pretrain.bench", description=__doc__)
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), help=f"any of {list(SECTIONS)}, or gpu alone")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller inputs (a smoke run)")
    args = parser.parse_args(argv)
    for name in args.sections:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; choose from {list(SECTIONS)}")
    for name in args.sections:
        print(f"\n## {name}\n", flush=True)
        importlib.import_module(SECTIONS[name]).main(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
