"""`bart-pretrain build-data`: the default offline data (Debian summarization pairs, a pretraining corpus, a
tokenizer) through ``bart_pretrain.corpus.build``, with the offline fallback where apt is missing or fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bart_pretrain.corpus import build
from bart_pretrain.corpus.debian import AptError, PrivateApt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bart-pretrain build-data",
        description="Build the default data: Debian summarization pairs, a pretraining corpus, a tokenizer.",
    )
    parser.add_argument("--out", default="data", help="output directory (default: data)")
    parser.add_argument("--vocab-size", type=int, default=8192, help="tokenizer vocabulary size (default 8192)")
    parser.add_argument(
        "--offline-fallback",
        action="store_true",
        help="do not use apt: build from /var/lib/dpkg/status and the Python stdlib's docstrings",
    )
    parser.add_argument("--refresh", action="store_true", help="re-run apt-get update even if indexes are cached")
    parser.add_argument("--force", action="store_true", help="rebuild even if the outputs are up to date")
    args = parser.parse_args(argv)
    out = Path(args.out)
    cache = out.resolve() / ".cache"
    try:
        if args.offline_fallback:
            build.log("--offline-fallback: using local sources (dpkg status descriptions, Python stdlib docstrings)")
            inputs: build.AptInputs | build.FallbackInputs = build.FallbackInputs()
        elif not PrivateApt.available():
            build.log("apt-get/apt-cache not found: using the OFFLINE FALLBACK (dpkg status, Python stdlib docstrings)")
            inputs = build.FallbackInputs()
        else:
            inputs = build.AptInputs(cache, refresh=args.refresh)
            try:
                inputs.prepare()
            except AptError as e:
                build.log(f"apt failed: {e}")
                build.log(
                    "using the OFFLINE FALLBACK instead: descriptions of the installed packages "
                    "(/var/lib/dpkg/status) and the Python standard library's docstrings. Far smaller than the "
                    "default data; run again with network access (add --refresh) to build the real one."
                )
                inputs = build.FallbackInputs()
        build.build(out, inputs, vocab_size=args.vocab_size, force=args.force)
    except (build.BuildError, AptError, ValueError, OSError) as e:
        print(f"bart-pretrain build-data: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
