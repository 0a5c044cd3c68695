"""`bart-pretrain train-tokenizer --files 'corpus/*.txt' --vocab_size 8192 --out tok/`: a byte-level BPE tokenizer
with BART's special ids (``bart_pretrain.tokenizer.train_tokenizer``).
"""

from __future__ import annotations

from bart_pretrain.commands.parsing import CommandParser
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.paths import InputPath
from bart_pretrain.tokenizer import DEFAULT_VOCAB_SIZE, MIN_VOCAB_SIZE, train_tokenizer


def parser() -> CommandParser:
    p = CommandParser(
        prog="bart-pretrain train-tokenizer", description="Train a byte-level BPE tokenizer with BART's special ids."
    )
    p.add_argument(
        "--files",
        type=list[InputPath] | InputPath,
        required=True,
        help="a text file, a directory (every file under it, one format) or a glob, or a list of them ('[a, b]'): "
        ".txt/.jsonl/.json/.parquet, text and JSON also gzipped (.txt.gz/.jsonl.gz/.json.gz)",
    )
    p.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE, help="ids in total, specials included")
    p.add_argument("--text_column", type=str, default="text", help="column holding the text in JSONL/Parquet files")
    p.add_argument("--min_frequency", type=int, default=2, help="drop merges seen fewer times")
    p.add_argument("--out", type=str, required=True, help="directory for tokenizer.json, vocab.json, merges.txt")
    p.add_argument(
        "--sentinels",
        type=int,
        default=0,
        help="also add the objective tokens after <mask>: <mask_sentence>, [R], [S], [X] and this many sentinels "
        "<extra_id_N> (T5: 100); 0: none, pretraining adds them when a recipe ends in an objective",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.vocab_size < MIN_VOCAB_SIZE:
        raise UserError(f"--vocab_size={args.vocab_size}: must be >= {MIN_VOCAB_SIZE}")
    if args.sentinels < 0 or args.sentinels == 1:
        raise UserError(f"--sentinels={args.sentinels}: must be 0 (no objective tokens) or >= 2")
    from bart_pretrain.data.documents import encoder_text
    from bart_pretrain.data.files import load_text_dataset

    with reading_input():
        try:
            ds = load_text_dataset(args.files, text_column=args.text_column)
        except ValueError as e:
            raise UserError(f"--files: {e}") from None
        texts = (encoder_text(t) for t in ds[args.text_column] if t)  # the text the documents' tokens come from
        tok = train_tokenizer(texts, args.vocab_size, min_frequency=args.min_frequency, sentinels=args.sentinels)
    tok.save(args.out)
    print(f"trained on {len(ds)} documents: vocab_size={tok.vocab_size} mask_id={tok.mask_id} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
