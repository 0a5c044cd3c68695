"""`bart-pretrain summarize`: summaries of documents read from stdin or a file, one per output line.

Input: one document per line, or JSONL (one object per line with a ``document`` field, or ``--field``). Output: one
summary per line; for JSONL input, each input object with a ``summary`` field added. Beam settings default to those
the fine-tuning run recorded in its checkpoint (``--model.generation``) or an export its ``generation_config.json``,
else to ``GenerationConfig``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from bart_pretrain.generation import GenerationConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bart-pretrain summarize", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="a fine-tuned .ckpt (ours) or a transformers BART directory")
    p.add_argument("--input", default="-", help="file of documents (default: stdin)")
    p.add_argument("--output", default="-", help="where to write summaries (default: stdout)")
    p.add_argument("--format", choices=("auto", "lines", "jsonl"), default="auto", help="input format (auto: JSONL "
                   "if every non-empty line is a JSON object, else one document per line)")  # fmt: skip
    p.add_argument("--field", default="document", help="JSONL field holding the document (default: document)")
    p.add_argument("--output_field", default="summary", help="JSONL field the summary is written to (default: "
                   "summary; it replaces an existing field of that name)")  # fmt: skip
    p.add_argument("--tokenizer", default=None, help="tokenizer.json or a directory, for a checkpoint that carries "
                   "none (for one that does, it must be that one)")  # fmt: skip
    p.add_argument("--max_source_length", type=int, default=None, help="truncate documents to this many tokens")
    p.add_argument("--max_tokens", type=int, default=8192, help="source-token budget of one beam-search batch")
    for f in dataclasses.fields(GenerationConfig):
        p.add_argument(f"--{f.name}", type=type(f.default), default=None,
                       help=f"beam search: {f.name} (default: the checkpoint's, else {f.default})")  # fmt: skip
    return p


def read_documents(lines: list[str], fmt: str, field: str, where: str) -> tuple[list[str], list[dict] | None]:
    """(documents, JSON rows or None). Blank lines are skipped in line mode; JSONL rows need ``field``."""
    lines = [line.rstrip("\n") for line in lines]
    content = [line for line in lines if line.strip()]
    if fmt == "auto":
        fmt = "jsonl" if content and all(_is_json_object(line) for line in content) else "lines"
    if fmt == "lines":
        return content, None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or field not in row:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ValueError(f"{where}:{n}: no field {field!r} (--field); the row has: {keys}")
        rows.append(row)
    return [str(r[field]) for r in rows], rows


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
        raise ValueError(f"{loaded.tokenizer_note}; pass --tokenizer path/to/tokenizer.json")
    return loaded.model.eval(), loaded.tokenizer, loaded.generation, loaded.max_source_length


def main(argv: list[str] | None = None) -> int:
    from bart_pretrain.evaluate import summarize_texts

    args = parser().parse_args(argv)
    try:
        if args.input == "-":
            lines, where = sys.stdin.readlines(), "<stdin>"
        else:
            lines, where = Path(args.input).read_text(encoding="utf-8").splitlines(), args.input
        documents, rows = read_documents(lines, args.format, args.field, where)
        model, tokenizer, recorded, recorded_len = load_for_generation(args.checkpoint, args.tokenizer)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(GenerationConfig)}
        generation = GenerationConfig().replace(**{**recorded, **{k: v for k, v in overrides.items() if v is not None}})
    except (OSError, TypeError, ValueError, UnicodeDecodeError) as e:
        print(f"bart-pretrain summarize: {e}", file=sys.stderr)
        return 2
    max_source_length = args.max_source_length or recorded_len or model.config.max_position_embeddings
    max_source_length = min(max_source_length, model.config.max_position_embeddings)
    summaries = summarize_texts(model, tokenizer, documents, generation, max_source_length, args.max_tokens)
    if rows is None:
        text = "".join(one_line(s) + "\n" for s in summaries)
    else:
        text = "".join(
            json.dumps({**r, args.output_field: s}, ensure_ascii=False) + "\n"
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
