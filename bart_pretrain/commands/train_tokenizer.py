"""`bart-pretrain train-tokenizer --files 'corpus/*.txt' --vocab-size 8192 --out tok/`: a byte-level BPE tokenizer
with BART's special ids (``bart_pretrain.tokenizer.train_tokenizer``).
"""

from __future__ import annotations

import argparse
import sys

from bart_pretrain.tokenizer import MIN_VOCAB_SIZE, train_tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bart-pretrain train-tokenizer", description="Train a byte-level BPE tokenizer with BART's special ids."
    )
    parser.add_argument(
        "--files",
        nargs="+",
        required=True,
        help="text files, directories (every file under them, one format) or globs: .txt/.jsonl/.json/.parquet, "
        "text and JSON also gzipped (.txt.gz/.jsonl.gz/.json.gz)",
    )
    parser.add_argument("--vocab-size", type=int, default=8192, help="ids in total, specials included (default 8192)")
    parser.add_argument("--text-column", default="text", help="column holding the text in JSONL/Parquet files")
    parser.add_argument("--min-frequency", type=int, default=2, help="drop merges seen fewer times (default 2)")
    parser.add_argument("--out", required=True, help="directory for tokenizer.json, vocab.json, merges.txt")
    parser.add_argument(
        "--sentinels",
        type=int,
        default=0,
        help="also add the objective tokens after <mask>: <mask_sentence>, [R], [S], [X] and this many sentinels "
        "<extra_id_N> (T5: 100); 0 (default): none, pretraining adds them when a recipe ends in an objective",
    )
    args = parser.parse_args(argv)
    from bart_pretrain.data.documents import BOM, load_text_dataset

    try:
        if args.vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(f"--vocab-size {args.vocab_size}: must be >= {MIN_VOCAB_SIZE}")
        if args.sentinels < 0 or args.sentinels == 1:
            raise ValueError(f"--sentinels {args.sentinels}: must be 0 (no objective tokens) or >= 2")
        try:
            ds = load_text_dataset(args.files, text_column=args.text_column)
        except ValueError as e:
            raise ValueError(f"--files: {e}") from None
        texts = (t.removeprefix(BOM) for t in ds[args.text_column] if t)  # as the documents are tokenized
        tok = train_tokenizer(texts, args.vocab_size, min_frequency=args.min_frequency, sentinels=args.sentinels)
    except ValueError as e:
        print(f"bart-pretrain train-tokenizer: error: {e}", file=sys.stderr)
        return 2
    tok.save(args.out)
    print(f"trained on {len(ds)} documents: vocab_size={tok.vocab_size} mask_id={tok.mask_id} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
