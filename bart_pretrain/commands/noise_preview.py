"""`bart-pretrain noise-preview`: a text (or corpus documents) before and after a noise recipe, tokens marked
by what happened to them: masked, deleted, inserted, moved, or replaced by a random token. A recipe ending in an
objective shows the document, the source and the target, its special tokens (sentinels, mode, mask) marked.

Provenance is exact for noises that do not read token values (all built-ins): the recipe runs a second time,
with the same generator, on a copy whose tokens are unique stand-in ids, and the stand-ins show where every
output token came from.
"""

from __future__ import annotations

import os
import sys
from bisect import bisect_left
from typing import Literal

import numpy as np
from jsonargparse import Namespace

import noising
from bart_pretrain.commands.parsing import CommandParser
from bart_pretrain.data.files import READABLE, read_texts
from bart_pretrain.data.noise_config import load_noise
from bart_pretrain.errors import UserError, reading_input
from bart_pretrain.paths import InputPath
from bart_pretrain.tokenizer import DEFAULT_TOKENIZER
from noising.provenance import trace

KEPT, MASKED, DELETED, INSERTED, MOVED, RANDOM = "kept", "masked", "deleted", "inserted", "moved", "random"
ANSI = {MASKED: "1;33", DELETED: "9;31", INSERTED: "1;32", MOVED: "36", RANDOM: "1;35"}
PLAIN = {MASKED: ("[[", "]]"), DELETED: ("[-", "-]"), INSERTED: ("[+", "+]"), MOVED: ("[~", "~]"), RANDOM: ("[?", "?]")}


def annotate(
    pipe: noising.Pipeline, doc: noising.Document, seed: int, epoch: int, index: int, ctx: noising.NoiseContext
) -> tuple[list[str], np.ndarray, list[str]] | None:
    """(label per input token, output tokens, label per output token); None if provenance cannot be traced."""
    traced = trace(pipe, doc, seed, epoch, index, ctx)
    if traced is None:
        return None  # the recipe reads token values: the stand-in run took another path
    out, source = traced  # source: input offset each output token came from; -1 for new tokens
    n, came = len(doc), source >= 0
    is_mask = out == ctx.mask_id
    after = [KEPT if s >= 0 else (MASKED if m else RANDOM) for s, m in zip(source, is_mask, strict=True)]
    before = [KEPT] * n
    in_order = longest_increasing(source[came].tolist())  # the largest set of tokens left in their order
    for rank, t in enumerate(np.flatnonzero(came)):
        if rank not in in_order:
            after[t] = before[source[t]] = MOVED
    present = np.zeros(n, dtype=bool)
    present[source[came]] = True
    for j in np.flatnonzero(~present):
        before[j] = DELETED
    for start, stop in runs(after, lambda label: label in (MASKED, RANDOM)):
        if not claim_gap(source, start, stop, present, before):
            after[start:stop] = [INSERTED] * (stop - start)
    return before, out, after


def claim_gap(source: np.ndarray, start: int, stop: int, present: np.ndarray, before: list[str]) -> bool:
    """Mark as masked the runs of missing input tokens that the new tokens ``[start, stop)`` replaced: the run
    right after the surviving token before them and the one right before the surviving token after them (spans
    on either side, e.g. when sentences moved). False if there is none: the new tokens were inserted."""
    candidates = []
    if start > 0 and source[start - 1] >= 0:
        candidates.append((source[start - 1] + 1, 1))
    if stop < len(source) and source[stop] >= 0:
        candidates.append((source[stop] - 1, -1))
    claimed = False
    for j, step in candidates:
        while 0 < j < len(present) - 1 and not present[j] and before[j] == DELETED:
            before[j] = MASKED
            j += step
            claimed = True
    return claimed


def runs(labels: list[str], member) -> list[tuple[int, int]]:
    """Maximal ``[start, stop)`` runs of labels satisfying ``member``."""
    out, start = [], None
    for i, label in enumerate([*labels, None]):
        if label is not None and member(label):
            start = i if start is None else start
        elif start is not None:
            out.append((start, i))
            start = None
    return out


def longest_increasing(values: list[int]) -> set[int]:
    """Indices of one longest strictly increasing subsequence (patience sorting)."""
    tails, tail_idx, prev = [], [], [-1] * len(values)
    for i, v in enumerate(values):
        k = bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_idx.append(i)
        else:
            tails[k], tail_idx[k] = v, i
        prev[i] = tail_idx[k - 1] if k else -1
    keep, i = set(), tail_idx[-1] if tail_idx else -1
    while i >= 0:
        keep.add(i)
        i = prev[i]
    return keep


def render(tokens, labels: list[str], token_bytes, color: bool) -> str:
    """The text of ``tokens``, each run of one label wrapped in its ANSI colour or plain marker. The tokens' bytes
    (``token_bytes(id)``) are joined and decoded together, so a character split over several byte-level tokens comes
    out whole, in the run of its first byte; bytes that form no character (one cut by the noise) show as ``�``."""
    data, owner = bytearray(), []
    for t, label in zip(tokens, labels, strict=True):
        b = token_bytes(int(t))
        data += b
        owner += [label] * len(b)
    runs: list[list] = []  # [label, characters]
    i = 0
    while i < len(data):
        n = _utf8_length(data[i])
        try:
            ch = bytes(data[i : i + n]).decode("utf-8") if n else "\ufffd"
        except UnicodeDecodeError:
            ch, n = "\ufffd", 1
        n = max(n, 1)
        if runs and runs[-1][0] == owner[i]:
            runs[-1][1].append(ch)
        else:
            runs.append([owner[i], [ch]])
        i += n
    pieces = []
    for label, chars in runs:
        text = "".join(chars)
        if label == KEPT:
            pieces.append(text)
        elif color:
            pieces.append(f"\033[{ANSI[label]}m{text}\033[0m")
        else:
            pieces.append(PLAIN[label][0] + text + PLAIN[label][1])
    return "".join(pieces)


def _utf8_length(lead: int) -> int:
    """Bytes of the UTF-8 character starting with byte ``lead`` (0: no character starts with it)."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _label_runs(labels: list[str]) -> list[tuple[int, int]]:
    bounds = [0] + [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]] + [len(labels)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def legend(color: bool) -> str:
    names = [MASKED, DELETED, INSERTED, MOVED, RANDOM]
    if color:
        return "legend: " + " ".join(f"\033[{ANSI[n]}m{n}\033[0m" for n in names)
    return "legend: " + " ".join(PLAIN[n][0] + n + PLAIN[n][1] for n in names)


def parser() -> CommandParser:
    p = CommandParser(prog="bart-pretrain noise-preview", description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", type=noising.Pipeline, required=True,
                   help="the noise recipe, as pretrain's --data.noise: a recipe file "
                   "(configs/noise/bart_large.yaml) or its noises")  # fmt: skip
    p.add_argument("--text", type=list[str] | str, default=[], help="a text to noise, or a list of them")
    p.add_argument(
        "--corpus",
        type=InputPath | None,
        default=None,
        help=f"a corpus to take documents from (column `text`), read as pretraining reads it: {READABLE}; a "
        "directory of such files or a glob",
    )
    p.add_argument("--n", type=int, default=2, help="corpus documents shown (the first chunk of each)")
    p.add_argument("--tokenizer_path", type=InputPath, default=DEFAULT_TOKENIZER, help="tokenizer.json or a directory")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--epoch", type=int, default=0, help="epoch whose noise to show")
    p.add_argument("--max_length", type=int, default=512, help="chunk length in tokens, as --data.max_length")
    p.add_argument("--color", type=Literal["auto", "always", "never"], default="auto", help="ANSI colours")
    return p


def _main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    args.text = [args.text] if isinstance(args.text, str) else args.text
    if not args.text and args.corpus is None:
        raise UserError("give --text TEXT or --corpus FILE")
    if args.n < 1:
        raise UserError(f"--n={args.n}: must be >= 1")
    from bart_pretrain.tokenizer import Tokenizer

    with reading_input():
        tok = Tokenizer.from_file(args.tokenizer_path, "--tokenizer_path")
        try:
            corpus = read_texts(args.corpus, args.n) if args.corpus is not None else []
        except ValueError as e:
            raise UserError(f"--corpus: {e}") from None
        pipe = load_noise(p.instantiate_classes(args).noise)  # the recipe's noises built
        if pipe.objective is not None:  # as pretraining does: the objective tokens follow <mask>
            tok = tok.with_objective_tokens()
    ctx = tok.noise_context(args.max_length)
    noising.check_plugins(pipe, ctx)  # a plug-in drawing from global random state would print other noise
    return _show(args, corpus, pipe, tok, ctx)


def _show(args: Namespace, corpus: list[str], pipe: noising.Pipeline, tok, ctx: noising.NoiseContext) -> int:
    from bart_pretrain.data.documents import encode_document, to_document

    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    # Every chunk of a --text; the first chunk of each corpus document.
    texts = [(t, None) for t in args.text]
    texts += [(t, 1) for t in corpus]
    decode = tok.token_bytes
    recipe = getattr(args.noise, "__path__", None) or "(given inline)"  # the recipe file, when one was named
    print(f"recipe {recipe}: {' -> '.join(map(repr, pipe.noises)) or '(no noise)'}")
    print(legend(color))
    index = 0
    for text, limit in texts:
        for chunk in encode_document(text, tok, args.max_length)[:limit]:
            doc = to_document(chunk)
            if pipe.objective is not None:
                _show_example(pipe, doc, args, index, ctx, decode, color)
                index += 1
                continue
            traced = annotate(pipe, doc, args.seed, args.epoch, index, ctx)
            print(f"\nsample {index} (seed {args.seed}, epoch {args.epoch}):", end=" ")
            if traced is None:
                out = pipe(doc, noising.sample_rng(args.seed, args.epoch, index), ctx).tokens
                print(f"{len(doc)} -> {len(out)} tokens (no provenance: the recipe reads token values)")
                print(f"  before: {render(doc.tokens, [KEPT] * len(doc), decode, color)}")
                print(f"  after:  {render(out, [KEPT] * len(out), decode, color)}")
            else:
                before, out, after = traced
                print(f"{len(doc)} -> {len(out)} tokens")
                print(f"  before: {render(doc.tokens, before, decode, color)}")
                print(f"  after:  {render(out, after, decode, color)}")
            index += 1
    if index == 0:
        raise UserError("no text to show (empty --text / corpus?)")
    return 0


def _show_example(pipe: noising.Pipeline, doc: noising.Document, args, index: int, ctx, decode, color: bool) -> None:
    """One sample of a recipe ending in an objective: the document, then the source and the target it makes, the
    special tokens the objective put there marked as masked."""
    example = pipe.example(doc, noising.sample_rng(args.seed, args.epoch, index), ctx)
    added = np.asarray([ctx.mask_id, *ctx.special_ids[5:]], dtype=np.int64)

    def labels(tokens: np.ndarray) -> list[str]:
        return [MASKED if m else KEPT for m in np.isin(tokens, added)]

    n_source, n_target = len(example.source), len(example.target)
    print(f"\nsample {index} (seed {args.seed}, epoch {args.epoch}): {len(doc)} tokens -> source {n_source}, target "
          f"{n_target}")  # fmt: skip
    print(f"  before: {render(doc.tokens, [KEPT] * len(doc), decode, color)}")
    print(f"  source: {render(example.source, labels(example.source), decode, color)}")
    print(f"  target: {render(example.target, labels(example.target), decode, color)}")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `noise-preview ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
