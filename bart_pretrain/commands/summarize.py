"""`bart-pretrain summarize`: summaries of documents read from stdin or a file, one per output line.

Input: one document per line, or JSONL (one object per line with a ``document`` field, or ``--field``). Output: line
N for input line N: its summary; for JSONL input, the input object with a ``summary`` field added. A blank input line
gives a blank output line and an empty document an empty summary (nothing is invented). Beam settings default to those
the fine-tuning run recorded in its checkpoint (``--model.generation``) or an export its ``generation_config.json``,
else to ``GenerationConfig``'s. The input, the checkpoint and the ``--output`` path are checked before any work.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Literal

from bart_pretrain.commands.parsing import CommandParser
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.evaluate import BEAM_BATCH_TOKENS, BEAM_BATCH_TOKENS_HELP
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.paths import InputPath


def parser() -> CommandParser:
    p = CommandParser(prog="bart-pretrain summarize", description=__doc__)
    p.add_argument("--checkpoint", type=InputPath, required=True,
                   help="a fine-tuned .ckpt (ours) or a transformers BART directory")  # fmt: skip
    p.add_argument("--input", type=InputPath, default="-", help="file of documents (-: stdin)")
    p.add_argument("--output", type=str, default="-", help="where to write summaries (-: stdout)")
    p.add_argument("--format", type=Literal["auto", "lines", "jsonl"], default="auto", help="input format (auto: "
                   "JSONL if every non-empty line is a JSON object, else one document per line)")  # fmt: skip
    p.add_argument("--field", type=str, default="document", help="JSONL field holding the document")
    p.add_argument("--output_field", type=str, default="summary", help="JSONL field the summary is written to (it "
                   "replaces an existing field of that name)")  # fmt: skip
    p.add_argument("--tokenizer_path", type=InputPath | None, default=None, help="tokenizer.json or a directory, "
                   "for a checkpoint that carries none (for one that does, it must be that one)")  # fmt: skip
    p.add_argument(
        "--max_source_length",
        type=int | None,
        default=None,
        help="truncate documents to this many tokens (null: the checkpoint's, else the model's limit)",
    )
    p.add_argument("--beam_batch_tokens", type=int, default=BEAM_BATCH_TOKENS, help=BEAM_BATCH_TOKENS_HELP)
    for f in dataclasses.fields(GenerationConfig):
        p.add_argument(f"--generation.{f.name}", type=type(f.default) | None, default=None,
                       help=f"beam search: {f.name} (null: the checkpoint's, else {f.default})")  # fmt: skip
    return p


def read_documents(lines: list[str], fmt: str, field: str, where: str) -> tuple[list[str], list[dict | None] | None]:
    """(one document per input line, JSON rows or None): a blank line is an empty document (and, in JSONL, a None
    row), so that output line N answers input line N. JSONL rows need ``field``."""
    lines = [line.rstrip("\r\n") for line in lines]
    content = [line for line in lines if line.strip()]
    if fmt == "auto":
        fmt = "jsonl" if content and all(_is_json_object(line) for line in content) else "lines"
    if fmt == "lines":
        return [line if line.strip() else "" for line in lines], None
    rows: list[dict | None] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            rows.append(None)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or field not in row:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise UserError(f"{where}:{n}: no field {field!r} (--field); the row has: {keys}")
        rows.append(row)
    return ["" if r is None or r[field] is None else str(r[field]) for r in rows], rows


def one_line(text: str) -> str:
    """``text`` with every line boundary of ``str.splitlines`` (\\n, \\r, \\x1c-\\x1e, \\u2028, ...) made a space."""
    return " ".join(text.splitlines())


def _is_json_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def load_for_generation(checkpoint: str, tokenizer_path: str | None = None):
    """(model in eval mode, tokenizer, recorded generation settings dict, recorded max_source_length or None)."""
    from bart_pretrain.loading import load_model

    if not Path(checkpoint).exists():
        raise FileNotFoundError(f"--checkpoint: no such file or directory: {checkpoint}")
    loaded = load_model(checkpoint, tokenizer_path)
    if loaded.tokenizer is None:
        raise UserError(f"{loaded.tokenizer_note}; pass --tokenizer_path path/to/tokenizer.json")
    return loaded.model.eval(), loaded.tokenizer, loaded.generation, loaded.max_source_length


def read_input(path: str) -> tuple[list[str], str]:
    """(the lines of ``path`` or stdin, its name for messages)."""
    if path == "-":
        return sys.stdin.readlines(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8").splitlines(), path
    except UnicodeDecodeError as e:
        raise UserError(f"--input {path}: not UTF-8 text (invalid byte at offset {e.start})") from None


def main(argv: list[str] | None = None) -> int:
    from bart_pretrain.evaluate import generate_texts

    args = parser().parse_args(argv)
    with reading_input():
        if args.output != "-":
            from bart_pretrain.io import check_writable_file

            check_writable_file(args.output, "--output")
        for flag in ("max_source_length", "beam_batch_tokens"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise UserError(f"--{flag}={getattr(args, flag)}: must be >= 1")
        lines, where = read_input(args.input)
        documents, rows = read_documents(lines, args.format, args.field, where)
        model, tokenizer, recorded, recorded_len = load_for_generation(args.checkpoint, args.tokenizer_path)
        overrides = {f.name: args.generation[f.name] for f in dataclasses.fields(GenerationConfig)}
        generation = GenerationConfig().replace(**{**recorded, **{k: v for k, v in overrides.items() if v is not None}})
    max_source_length = args.max_source_length or recorded_len or model.config.max_position_embeddings
    max_source_length = min(max_source_length, model.config.max_position_embeddings)
    # Only the non-empty documents are summarized; an empty one (a blank line) gets an empty summary in its place.
    todo = [i for i, d in enumerate(documents) if d.strip()]
    summaries = [""] * len(documents)
    done = generate_texts(
        model, tokenizer, [documents[i] for i in todo], generation, max_source_length, args.beam_batch_tokens
    )
    for i, summary in zip(todo, done, strict=True):
        summaries[i] = summary
    if rows is None:
        text = "".join(one_line(s) + "\n" for s in summaries)
    else:
        text = "".join(
            ("" if r is None else json.dumps({**r, args.output_field: s}, ensure_ascii=False)) + "\n"
            for r, s in zip(rows, summaries, strict=True)
        )
    if args.output == "-":
        sys.stdout.write(text)
    else:
        from bart_pretrain.io import atomic_write_text

        atomic_write_text(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
