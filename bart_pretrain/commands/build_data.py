"""`bart-pretrain build-data`: the default offline data (Debian summarization pairs, a pretraining corpus, a
tokenizer) through ``bart_pretrain.corpus.build``, with the offline fallback where apt is missing or fails; or, with
``--scale_corpus SIZE``, a large corpus made from a small one for measurement (``bart_pretrain.corpus.scaled``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from jsonargparse import Namespace

from bart_pretrain.commands.parsing import CommandParser
from bart_pretrain.corpus import build
from bart_pretrain.corpus.debian import AptError, PrivateApt
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.paths import InputPath
from bart_pretrain.tokenizer import DEFAULT_VOCAB_SIZE

SCALE_FROM = "data/corpus/train.jsonl"


def parser() -> CommandParser:
    p = CommandParser(
        prog="bart-pretrain build-data",
        description="Build the default data: Debian summarization pairs, a pretraining corpus, a tokenizer; or, with "
        "--scale_corpus, a large corpus for measurement.",
    )
    p.add_argument("--out", type=str, default="data", help="output directory")
    p.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE, help="tokenizer vocabulary size")
    p.add_argument(
        "--offline_fallback",
        type=bool,
        default=False,
        help="do not use apt: build from /var/lib/dpkg/status and the Python stdlib's docstrings",
    )
    p.add_argument("--refresh", type=bool, default=False, help="re-run apt-get update even if indexes are cached")
    p.add_argument(
        "--force",
        type=bool,
        default=False,
        help="rebuild even if the outputs are up to date (with --scale_corpus: replace the files --out holds)",
    )
    p.add_argument(
        "--scale_corpus",
        type=str | None,
        default=None,
        help="instead of the default data: write SIZE (e.g. 1GB, 200MB) of shuffled, perturbed copies of "
        "--scale_from's documents into --out as JSONL files (part-00000.jsonl ...); no download",
    )
    p.add_argument("--scale_from", type=InputPath, default=SCALE_FROM, help="the documents --scale_corpus scales")
    p.add_argument("--scale_files", type=int, default=64, help="number of files --scale_corpus writes")
    p.add_argument("--seed", type=int, default=0, help="seed of --scale_corpus's shuffles and perturbations")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.scale_corpus is not None:
        return _scale(args)
    out = Path(args.out)
    cache = out.resolve() / ".cache"
    try:
        if args.offline_fallback:
            build.log("--offline_fallback: using local sources (dpkg status descriptions, Python stdlib docstrings)")
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
                    "default data; run again with network access (add --refresh true) to build the real one."
                )
                inputs = build.FallbackInputs()
        build.build(out, inputs, vocab_size=args.vocab_size, force=args.force)
    except (build.BuildError, AptError, ValueError, OSError) as e:
        print(f"bart-pretrain build-data: error: {e}", file=sys.stderr)
        return 1
    return 0


def _scale(args: Namespace) -> int:
    """``--scale_corpus``: refuses an --out that holds files (unless --force true, which replaces them)."""
    from bart_pretrain.corpus.scaled import MANIFEST, parse_size, scale_corpus
    from bart_pretrain.data.files import load_text_dataset

    try:
        size = parse_size(args.scale_corpus)
    except ValueError as e:
        raise UserError(f"--scale_corpus {e}") from None
    if args.scale_files < 1:
        raise UserError(f"--scale_files {args.scale_files}: must be >= 1")
    out = Path(args.out)
    if out.is_file():
        raise UserError(f"--out {out}: a file, not a directory")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not args.force:
        raise UserError(
            f"--out {out} holds {len(held)} entries ({', '.join(held[:3])}{' ...' if len(held) > 3 else ''}); give an "
            "empty or new directory, or --force true to replace them"
        )
    with reading_input():
        texts = load_text_dataset(args.scale_from)["text"]
    ours = [p for p in out.glob("part-*.jsonl")] + [out / MANIFEST] if out.is_dir() else []
    for p in ours:  # --force: a smaller corpus must not keep the old one's extra parts
        p.unlink(missing_ok=True)
    start = time.perf_counter()
    with reading_input():
        m = scale_corpus(texts, out, size, args.scale_files, args.seed, source=str(Path(args.scale_from).resolve()))
    build.log(
        f"wrote {m['bytes'] / 1e6:,.1f} MB, {m['documents']:,} documents ({m['source_documents']:,} source documents), "
        f"in {args.scale_files} files under {out} in {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
