"""`bart-pretrain export-hf CHECKPOINT OUT_DIR`: weights, tokenizer and beam settings in a directory
transformers loads (``bart_pretrain.hf.save_hf``), so that ``AutoTokenizer`` + ``AutoModelForSeq2SeqLM.generate()``
summarize as ``bart-pretrain summarize`` does. Lightning-free. The output directory is checked before the checkpoint
is read.
"""

from __future__ import annotations

import dataclasses

from bart_pretrain.commands.parsing import CommandParser
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.hf import save_hf
from bart_pretrain.io import check_writable_dir
from bart_pretrain.paths import InputPath


def parser() -> CommandParser:
    p = CommandParser(prog="bart-pretrain export-hf", description=__doc__.splitlines()[0])
    p.add_argument(
        "checkpoint",
        type=InputPath,
        help="a Lightning .ckpt of ours, a sharded checkpoint directory of ours (--trainer.strategy sharded), or a "
        "transformers BART directory",
    )
    p.add_argument("out_dir", type=str, help="directory to write (created if missing)")
    p.add_argument(
        "--tokenizer_path",
        type=InputPath | None,
        default=None,
        help="tokenizer.json (or a directory) for a checkpoint that carries none (ours written before they carried "
        "their tokenizer); for one that does, it must be that same tokenizer",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from bart_pretrain.loading import load_model

    with reading_input():
        check_writable_dir(args.out_dir, "out_dir")
        loaded = load_model(args.checkpoint, args.tokenizer_path)
        if loaded.tokenizer is None:
            raise UserError(f"{loaded.tokenizer_note}; pass --tokenizer_path path/to/tokenizer.json (the one "
                            "it was trained with): an export without it would not encode text")  # fmt: skip
        generation = GenerationConfig().replace(**loaded.generation)
    out = save_hf(loaded.model, loaded.tokenizer, args.out_dir, generation, loaded.max_source_length)
    settings = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(generation).items())
    print(f"wrote {out}: weights, tokenizer (sha256 {loaded.tokenizer.fingerprint()[:12]}...), beam search {settings}")
    print(f"load it with transformers.AutoModelForSeq2SeqLM.from_pretrained({str(out)!r}) and AutoTokenizer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
