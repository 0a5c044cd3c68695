"""From raw text to what the noising needs: sentences, token ids, word starts, chunks of at most ``max_length``.

Sentence boundaries come from a rule-based splitter (a regex pass with an abbreviation list, in the spirit of
Punkt/pysbd's rules, ~50x faster than pysbd) applied to the TEXT, so sentence permutation works with any
tokenizer (fairseq instead looks for a full-stop token id). Word starts come from the tokenizer's own
vocabulary: a byte-level BPE token starting with ``Ġ`` (or ``▁`` for SentencePiece, anything but ``##`` for
WordPiece) begins a word, and so does the first token of every sentence.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from noising.base import Document

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    import datasets

    from bart_pretrain.tokenizer import Tokenizer

# ---------------------------------------------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------------------------------------------

_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A line that starts a list item starts a new sentence even without a full stop before it.
_LIST_ITEM = re.compile(r"\n[ \t]*(?=(?:[-*+\u2022o]|\d{1,3}[.)]|\([0-9a-zA-Z]{1,3}\))[ \t]+\S)")
# Sentence-final punctuation, optional closing quotes/brackets, whitespace, and (captured) the next character.
_BOUNDARY = re.compile(r"([.!?\u2026]+)([\"'\u201d\u2019)\]]*)\s+(?=(\S))")
_DOTTED_INITIALS = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g, i.e, u.s, a.k.a
# Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt vs viz cf approx resp esp incl excl ca al dept univ assoc gen gov
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun inc ltd corp co bros""".split()
)
# Abbreviations that are only abbreviations before a number ("No. 5", "Fig. 3"; but "said no. Then").
_NUMBER_ABBREVIATIONS = frozenset("no nos vol vols fig figs eq eqs sec secs ch chap art ref refs p pp pt ver".split())
_OPENERS = "\"'\u201c\u2018([{"


def _ends_sentence(segment: str, match: re.Match) -> bool:
    punct, closers, nxt = match.group(1), match.group(2), match.group(3)
    if nxt.islower():
        return False  # "the tool. it ..." and "e.g. foo" are one sentence
    if punct != "." or closers:
        return True
    start = segment.rfind(" ", 0, match.start(1)) + 1
    word = segment[start : match.start(1)].lstrip(_OPENERS)
    lower = word.lower()
    if lower in _ABBREVIATIONS or _DOTTED_INITIALS.fullmatch(lower):
        return False
    if lower in _NUMBER_ABBREVIATIONS and nxt.isdigit():
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien"
    return True


def _split_segment(segment: str) -> list[str]:
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(segment):
        if _ends_sentence(segment, match):
            end = match.end(2)
            sentences.append(segment[start:end])
            start = match.end()
    if start < len(segment):
        sentences.append(segment[start:])
    return sentences


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, each with its whitespace collapsed to single spaces.

    A sentence ends at ``.``/``!``/``?``/``…`` (plus closing quotes or brackets) followed by whitespace and a
    character that is not a lowercase letter, except after an abbreviation ("e.g.", "Dr.", "Fig. 3") or an
    initial ("J. Smith"). Decimals ("3.14"), versions and file names ("setup.py") never split: no space
    follows their dot. Blank lines (paragraph breaks) and list items ("- item", "1. item") always start a new
    sentence. Empty or whitespace-only text gives ``[]``.
    """
    sentences = []
    for block in _BLANK_LINES.split(text):
        for segment in _LIST_ITEM.split(block):
            segment = " ".join(segment.split())
            if segment:
                sentences.extend(_split_segment(segment))
    return sentences


# ---------------------------------------------------------------------------------------------------------------
# Tokenization and chunking
# ---------------------------------------------------------------------------------------------------------------


def _chunk(
    sentences: list[list[int]], starts_word: np.ndarray, max_length: int, bos_id: int, eos_id: int
) -> list[dict]:
    """Pack tokenized sentences into chunks of at most ``max_length`` tokens with ``<s>``/``</s>``."""
    budget = max_length - 2
    chunks: list[dict] = []
    ids: list[int] = []
    sent_starts: list[int] = []

    def flush():
        if ids:
            arr = np.asarray(ids, dtype=np.int64)
            ws = starts_word[arr]
            ws[[s - 1 for s in sent_starts]] = True  # every sentence (and chunk) begins a word
            chunks.append(
                {
                    "input_ids": [bos_id, *ids, eos_id],
                    "word_starts": [0, *ws.astype(np.int8).tolist(), 0],
                    "sentence_starts": list(sent_starts),
                }
            )
            ids.clear()
            sent_starts.clear()

    for sent in sentences:
        if not sent:
            continue
        if len(ids) + len(sent) > budget:
            flush()
        # A sentence longer than the budget is cut hard; each piece counts as a sentence of its own chunk.
        for i in range(0, len(sent), budget):
            piece = sent[i : i + budget]
            if len(ids) + len(piece) > budget:
                flush()
            sent_starts.append(len(ids) + 1)
            ids.extend(piece)
    flush()
    return chunks


def _sentence_texts(text: str) -> list[str]:
    # Every sentence after the first gets its leading space back, so byte-level BPE sees " word" -> "Ġword".
    return [s if i == 0 else " " + s for i, s in enumerate(split_sentences(text))]


PIECE_CHARS = 4096  # the tokenizer sees at most this many characters at once (see _encode_sentences)


def sentence_pieces(sentence: str, size: int = PIECE_CHARS) -> list[str]:
    """``sentence`` cut into pieces of at most ``size`` characters, each cut just before a space (whitespace is single
    spaces here, and a pre-tokenizer never joins a word to the space before it, so the tokens do not change); a run of
    more than ``size`` characters without a space is cut where it must."""
    pieces, start = [], 0
    while len(sentence) - start > size:
        cut = sentence.rfind(" ", start + 1, start + size + 1)
        cut = cut if cut > start else start + size
        pieces.append(sentence[start:cut])
        start = cut
    pieces.append(sentence[start:])
    return pieces


def _encode_sentences(tok: Tokenizer, sentences: list[str]) -> list[list[int]]:
    """One batched tokenizer call for all ``sentences``, each a list of ids. A long sentence is encoded in pieces
    (:func:`sentence_pieces`): the same ids, but a string of megabytes takes the tokenizer several times longer than its
    pieces, and on one core (a 10 MB line without punctuation: 14 s whole, 2 s in pieces)."""
    counts, flat = [], []
    for sentence in sentences:
        pieces = sentence_pieces(sentence)
        counts.append(len(pieces))
        flat.extend(pieces)
    ids = tok.encode_batch(flat)
    out, i = [], 0
    for n in counts:
        out.append(ids[i] if n == 1 else [t for piece in ids[i : i + n] for t in piece])
        i += n
    return out


def encode_document(text: str, tok: Tokenizer, max_length: int) -> list[dict]:
    """Tokenize one document into chunks cut at sentence boundaries (``[]`` for an empty document).

    Each chunk has the fields of :class:`noising.Document` as lists: ``input_ids`` (``<s> ... </s>``, at most
    ``max_length`` long), ``word_starts`` (0/1, 0 at ``<s>``/``</s>``), ``sentence_starts`` (first is 1).
    """
    if max_length < 3:
        raise ValueError(f"max_length={max_length}: must be >= 3 (<s>, one token, </s>)")
    sentences = _encode_sentences(tok, _sentence_texts(text))
    return _chunk(sentences, tok.word_start_table(), max_length, tok.bos_id, tok.eos_id)


def encode_documents(texts: Iterable[str], tok: Tokenizer, max_length: int) -> list[list[dict]]:
    """:func:`encode_document` over many texts with one batched tokenizer call (the fast path)."""
    if max_length < 3:
        raise ValueError(f"max_length={max_length}: must be >= 3 (<s>, one token, </s>)")
    per_doc = [_sentence_texts(t) if isinstance(t, str) else [] for t in texts]
    flat = _encode_sentences(tok, [s for doc in per_doc for s in doc])
    table = tok.word_start_table()
    out, i = [], 0
    for doc in per_doc:
        out.append(_chunk(flat[i : i + len(doc)], table, max_length, tok.bos_id, tok.eos_id))
        i += len(doc)
    return out


def to_document(row: dict) -> Document:
    """A row of :func:`tokenize_dataset` (or a chunk of :func:`encode_document`) as a :class:`noising.Document`."""
    return Document(
        np.asarray(row["input_ids"], dtype=np.int64),
        np.asarray(row["word_starts"], dtype=bool),
        np.asarray(row["sentence_starts"], dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------------------------
# Loading text
# ---------------------------------------------------------------------------------------------------------------

LOCAL_SUFFIXES = {".txt": "text", ".text": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def file_suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _check_text_file(path: str) -> None:
    """Fail early, naming the file, on an empty or non-UTF-8 file (the builders would raise deep inside)."""
    decoder = __import__("codecs").getincrementaldecoder("utf-8")()
    has_text = False
    offset = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            try:
                chunk = decoder.decode(block)
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}: not UTF-8 text (invalid byte 0x{block[e.start]:02x} at byte offset {offset + e.start});"
                    " convert it, e.g. `iconv -f latin1 -t utf-8`"
                ) from None
            has_text = has_text or bool(chunk.strip())
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text (truncated multi-byte character at the end)") from None
    if not has_text:
        raise ValueError(f"{path}: the file is empty (no text to train on)")


def expand_source(source: str | list[str]) -> list[str]:
    patterns = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not patterns:
        raise ValueError("load_text_dataset: no files given (an empty list)")
    files: list[str] = []
    for pattern in map(str, patterns):
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not matches and glob.has_magic(pattern):
            raise ValueError(f"{pattern}: the pattern matches no file")
        files.extend(m for m in matches if os.path.isfile(m))
        if not matches:
            files.append(pattern)
    return files


def looks_local(source: str | list[str]) -> bool:
    if not isinstance(source, (str, os.PathLike)):
        return True
    s = str(source)
    return os.path.exists(s) or glob.has_magic(s) or file_suffix(s) in LOCAL_SUFFIXES or os.sep in s.rstrip(os.sep)


def load_text_dataset(source: str | list[str], text_column: str = "text", split: str = "train") -> datasets.Dataset:
    """Load documents as a ``datasets.Dataset`` with a string column ``text_column``.

    ``source`` is a local file, a directory, a glob, or a list of them: ``.txt`` (one document per
    blank-line-separated block), ``.jsonl``/``.json`` (one object per line / a list, the text in
    ``text_column``), ``.parquet``; or else the name of a ``datasets`` dataset (hub, when online; ``split``).
    Problems (no such file, empty or non-UTF-8 file, missing or non-string column) raise ``ValueError``
    naming the file and what is wrong.
    """
    import datasets

    if looks_local(source):
        paths = []
        for p in expand_source(source):
            if os.path.isdir(p):
                inner = [
                    os.path.join(root, n)
                    for root, _, names in os.walk(p)
                    for n in names
                    if file_suffix(n) in LOCAL_SUFFIXES
                ]
                if not inner:
                    raise ValueError(f"{p}: directory holds no .txt/.jsonl/.json/.parquet file")
                paths.extend(sorted(inner))
            elif not os.path.exists(p):
                raise ValueError(f"{p}: no such file (looked for {os.path.abspath(p)})")
            else:
                paths.append(p)
        kinds = {LOCAL_SUFFIXES.get(file_suffix(p)) for p in paths}
        if None in kinds:
            bad = next(p for p in paths if file_suffix(p) not in LOCAL_SUFFIXES)
            raise ValueError(f"{bad}: unknown file type; use .txt, .jsonl, .json or .parquet")
        if len(kinds) > 1:
            raise ValueError(f"mixed file types {sorted(kinds)} in {paths}: load each type separately")
        kind = kinds.pop()
        for p in paths:
            if kind == "parquet":
                if os.path.getsize(p) == 0:
                    raise ValueError(f"{p}: the file is empty")
            else:
                _check_text_file(p)
        kwargs = {"sample_by": "paragraph"} if kind == "text" else {}
        try:
            ds = datasets.load_dataset(kind, data_files=paths, split="train", **kwargs)
        except Exception as e:  # the builders' errors are long chains; keep the cause, name the files
            cause = e.__cause__ or e
            raise ValueError(f"could not read {', '.join(paths)} as {kind}: {type(cause).__name__}: {cause}") from e
        if kind == "text" and text_column != "text":
            ds = ds.rename_column("text", text_column)
        where = ", ".join(paths)
    else:
        try:
            ds = datasets.load_dataset(str(source), split=split)
        except Exception as e:
            raise ValueError(
                f"{source!r}: not a local file and could not be loaded as a `datasets` dataset (split={split!r}): "
                f"{type(e).__name__}: {e}"
            ) from e
        where = str(source)
    if text_column not in ds.column_names:
        raise ValueError(f"{where}: no column {text_column!r} (columns: {ds.column_names}); pass text_column=...")
    feature = ds.features[text_column]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise ValueError(f"{where}: column {text_column!r} holds {feature}, not strings")
    return ds


def tokenize_dataset(
    ds: datasets.Dataset, tok: Tokenizer, max_length: int, text_column: str = "text", num_proc: int = 1
) -> datasets.Dataset:
    """Tokenize and chunk every document: a dataset with one row per chunk and the columns ``input_ids``,
    ``word_starts``, ``sentence_starts``. Cached by ``datasets.map`` under a fingerprint of the input
    dataset, the tokenizer and ``max_length``; documents without text give no row and are counted in a warning."""
    import datasets

    if text_column not in ds.column_names:
        raise ValueError(f"tokenize_dataset: no column {text_column!r} (columns: {ds.column_names})")
    empty = count_empty_documents(ds, text_column)
    if empty:
        log.warning(
            "skipped %d of %d documents with no text (empty, whitespace-only or no %r value)",
            empty,
            len(ds),
            text_column,
        )
    if max_length < 3:
        raise ValueError(f"max_length={max_length}: must be >= 3 (<s>, one token, </s>)")
    digest = hashlib.sha256(
        json.dumps([ds._fingerprint, tok.fingerprint(), max_length, text_column, _FORMAT_VERSION]).encode()
    ).hexdigest()[:16]
    features = datasets.Features(
        {
            "input_ids": datasets.Sequence(datasets.Value("int32")),
            "word_starts": datasets.Sequence(datasets.Value("int8")),
            "sentence_starts": datasets.Sequence(datasets.Value("int32")),
        }
    )
    return ds.map(
        _TokenizeBatch(tok, max_length, text_column),
        batched=True,
        batch_size=1000,
        remove_columns=ds.column_names,
        features=features,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        new_fingerprint=digest,
        desc="tokenize",
    )


def count_empty_documents(ds: datasets.Dataset, text_column: str = "text") -> int:
    """Rows whose ``text_column`` is null, empty or whitespace only (they give no chunk); one vectorised Arrow pass."""
    import pyarrow.compute as pc

    n = 0
    for table in ds.select_columns([text_column]).with_format("arrow").iter(batch_size=65536):
        col = table[text_column]
        blank = pc.or_(pc.equal(pc.binary_length(col), 0), pc.utf8_is_space(col))
        n += col.null_count + (pc.sum(blank).as_py() or 0)
    return n


_FORMAT_VERSION = 2  # bump when the chunk format or sentence splitter changes, to invalidate cached maps


class _TokenizeBatch:
    def __init__(self, tok: Tokenizer, max_length: int, text_column: str):
        self.tok, self.max_length, self.text_column = tok, max_length, text_column

    def __call__(self, batch: dict) -> dict:
        out = {"input_ids": [], "word_starts": [], "sentence_starts": []}
        for chunks in encode_documents(batch[self.text_column], self.tok, self.max_length):
            for c in chunks:
                for key in out:
                    out[key].append(c[key])
        return out
