"""From raw text to what the noising needs: sentences, token ids, word starts, chunks of at most ``max_length``;
and reading local corpora (files, globs, directories, gzip, a UTF-8 BOM) into a ``datasets.Dataset``.

Sentence boundaries come from a rule-based splitter (a regex pass with an abbreviation list, in the spirit of
Punkt/pysbd's rules, ~50x faster than pysbd) applied to the TEXT, so sentence permutation works with any
tokenizer (fairseq instead looks for a full-stop token id). Word starts come from the tokenizer's own
vocabulary: a byte-level BPE token starting with ``Ġ`` (or ``▁`` for SentencePiece, anything but ``##`` for
WordPiece) begins a word, and so does the first token of every sentence; in a sentence written without spaces
(Chinese, Japanese, Thai ...) every character begins a word (:func:`spaceless_word_starts`).
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import IO, TYPE_CHECKING

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


def _split_spaced(segment: str) -> list[str]:
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(segment):
        if _ends_sentence(segment, match):
            end = match.end(2)
            sentences.append(segment[start:end])
            start = match.end()
    if start < len(segment):
        sentences.append(segment[start:])
    return sentences


# Sentence ends that need neither a space nor a capital after them: the ideographic and fullwidth full stops,
# exclamation and question marks of Chinese and Japanese (。｡．！？), the Devanagari danda and double danda (। ॥),
# the Arabic question mark (؟) and the Urdu full stop (۔); none of them abbreviates anything. Closing quotes and
# brackets after them belong to the sentence.
_CLOSED_END = re.compile(
    "([\u3002\uff61\uff0e\uff01\uff1f\u0964\u0965\u061f\u06d4]+)"
    "([\"'\u201d\u2019)\\]\u300d\u300f\uff09\u3011\u3015\u300b\u3009]*)\\s*"
)
_QUOTATIVE = "\u3068\u3063"  # と, っ(て): 「…。」と言った goes on after the quote


def _closed_end_ends_sentence(segment: str, match: re.Match) -> bool:
    if match.end() == len(segment):
        return False  # nothing follows
    punct, closers, nxt = match.group(1), match.group(2), segment[match.end()]
    if closers and not match.group(0)[len(punct) + len(closers) :] and nxt in _QUOTATIVE:
        return False
    before = segment[match.start() - 1] if match.start() else ""
    return not (punct == "\uff0e" and before.isdigit() and nxt.isdigit())  # a fullwidth decimal point: ３．１４


def _split_segment(segment: str) -> list[tuple[str, bool]]:
    """(sentence, True if it follows the one before without a space) per sentence of ``segment``."""
    if segment.isascii() or _CLOSED_END.search(segment) is None:  # the common case (text in a Latin script)
        return [(sentence, False) for sentence in _split_spaced(segment)]
    sentences, start, glued = [], 0, False
    for match in _CLOSED_END.finditer(segment):
        if _closed_end_ends_sentence(segment, match):
            pieces = _split_spaced(segment[start : match.end(2)])
            sentences.extend((piece, glued and k == 0) for k, piece in enumerate(pieces))
            start, glued = match.end(), match.end() == match.end(2)
    pieces = _split_spaced(segment[start:])
    sentences.extend((piece, glued and k == 0) for k, piece in enumerate(pieces))
    return sentences


# A line break between two CJK characters (ideographs, kana, CJK or fullwidth punctuation) wraps a line of text written
# without spaces: it joins the lines without adding one.
_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_WRAP = re.compile(f"(?<=[{_CJK}])[ \t\r]*\n[ \t\r]*(?=[{_CJK}])")


def _sentences(text: str) -> list[tuple[str, bool]]:
    sentences = []
    for block in _BLANK_LINES.split(text):
        for segment in _LIST_ITEM.split(block):
            if "\n" in segment and not segment.isascii() and _SPACELESS.search(segment):
                segment = _CJK_WRAP.sub("", segment)
            segment = " ".join(segment.split())
            if segment:
                sentences.extend(_split_segment(segment))
    return sentences


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, each with its whitespace collapsed to single spaces.

    A sentence ends at ``.``/``!``/``?``/``…`` (plus closing quotes or brackets) followed by whitespace and a
    character that is not a lowercase letter, except after an abbreviation ("e.g.", "Dr.", "Fig. 3") or an
    initial ("J. Smith"). Decimals ("3.14"), versions and file names ("setup.py") never split: no space
    follows their dot. It also ends, with or without a space after, at the full stops, exclamation and question
    marks of Chinese and Japanese (``。｡．！？``; not 「…。」と, where the quote goes on, nor a fullwidth decimal
    point), at the Devanagari danda ``।``/``॥``, the Arabic ``؟`` and the Urdu ``۔``. Blank lines (paragraph
    breaks) and list items ("- item", "1. item") always start a new sentence; a line break between two CJK characters
    joins the lines without a space. Empty or whitespace-only text gives ``[]``.
    """
    return [sentence for sentence, _ in _sentences(text)]


# ---------------------------------------------------------------------------------------------------------------
# Tokenization and chunking
# ---------------------------------------------------------------------------------------------------------------


# Letters of the scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, hiragana and katakana
# (with the halfwidth forms), CJK ideographs (extensions and compatibility forms included). Only category Lo counts:
# combining vowel and tone marks, the prolonged-sound mark and punctuation join the character before them.
_SPACELESS = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)
_OTHER_WORD = re.compile(r"[^\W\d_]+")  # a run of letters (what is left once the spaceless ones are blanked)
# Thai and Lao vowels written after their consonant (ะ า ำ, ະ າ ຳ): letters that join the character before them.
_JOINING = frozenset("\u0e30\u0e32\u0e33\u0e45\u0eb0\u0eb2\u0eb3")


@lru_cache(maxsize=65536)
def _in_script(ch: str) -> bool:
    return _SPACELESS.match(ch) is not None


@lru_cache(maxsize=65536)
def _spaceless_letter(ch: str) -> bool:
    return _in_script(ch) and unicodedata.category(ch) == "Lo"


def written_without_spaces(sentence: str) -> bool:
    """Is ``sentence`` mostly in a script without spaces between words? True when half its letters of such scripts
    (Chinese and Japanese words are about two characters long) outnumber its words in other scripts: 我用Python写代码
    is, an English sentence quoting 青空文庫 is not (the quote stays one word, like any foreign word)."""
    if sentence.isascii() or _SPACELESS.search(sentence) is None:
        return False
    spaceless = sum(map(_spaceless_letter, sentence))
    if not spaceless:
        return False
    blanked = "".join(" " if _spaceless_letter(ch) else ch for ch in sentence)
    return spaceless > 2 * len(_OTHER_WORD.findall(blanked))


def spaceless_word_starts(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Positions of the tokens that begin a word in ``text`` written without spaces (given each token's character
    ``offsets`` in ``text``): whole-word masking there means per character, as no word segmenter runs. A token begins
    a word when it is the first token of a letter of such a script (a character split into several byte-level
    tokens is one word; a token holding several characters is one word, tokens cannot be split), or of a letter or
    digit right after one (用|Python); not after a token of only whitespace (that token already begins the word).
    Combining marks, Thai/Lao vowels written after their consonant and punctuation join the character before."""
    starts, end, after_space, n = [], 0, False, len(text)
    for i, (a, b) in enumerate(offsets):
        # a < end: the token begins inside a character that the token before already began
        if a >= end and a < n and not after_space:
            ch = text[a]
            if _in_script(ch):
                if _spaceless_letter(ch) and ch not in _JOINING:
                    starts.append(i)
            elif a and ch.isalnum() and _spaceless_letter(text[a - 1]):
                starts.append(i)
        after_space, end = b > a and text[a:b].isspace(), b
    return starts


def _chunk(
    sentences: list[list[int]],
    starts_word: np.ndarray,
    max_length: int,
    bos_id: int,
    eos_id: int,
    extra_starts: list[list[int] | None] | None = None,
) -> list[dict]:
    """Pack tokenized sentences into chunks of at most ``max_length`` tokens with ``<s>``/``</s>``. Word starts are
    ``starts_word[id]``, the first token of every sentence and, per sentence, the positions in ``extra_starts``."""
    budget = max_length - 2
    chunks: list[dict] = []
    ids: list[int] = []
    sent_starts: list[int] = []
    marks: list[int] = []

    def flush():
        if ids:
            arr = np.asarray(ids, dtype=np.int64)
            ws = starts_word[arr]
            ws[[s - 1 for s in sent_starts]] = True  # every sentence (and chunk) begins a word
            if marks:
                ws[marks] = True
            chunks.append(
                {
                    "input_ids": [bos_id, *ids, eos_id],
                    "word_starts": [0, *ws.astype(np.int8).tolist(), 0],
                    "sentence_starts": list(sent_starts),
                }
            )
            ids.clear()
            sent_starts.clear()
            marks.clear()

    for n, sent in enumerate(sentences):
        if not sent:
            continue
        extra = extra_starts[n] if extra_starts is not None else None
        if len(ids) + len(sent) > budget:
            flush()
        # A sentence longer than the budget is cut hard; each piece counts as a sentence of its own chunk.
        for i in range(0, len(sent), budget):
            piece = sent[i : i + budget]
            if len(ids) + len(piece) > budget:
                flush()
            sent_starts.append(len(ids) + 1)
            if extra:
                marks.extend(len(ids) + p - i for p in extra if i <= p < i + budget)
            ids.extend(piece)
    flush()
    return chunks


BOM = "\ufeff"


def _sentence_texts(text: str) -> list[str]:
    # A byte-order mark opening a document is no text (datasets keeps it at the start of a .txt.gz, of a hub file).
    text = text[1:] if text.startswith(BOM) else text
    # Every sentence after the first gets its leading space back, so byte-level BPE sees " word" -> "Ġword"; not one
    # that followed the one before without a space (我喜欢猫。他喜欢狗！): the tokens are those of the text.
    return [s if i == 0 or glued else " " + s for i, (s, glued) in enumerate(_sentences(text))]


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


def _encode_sentences(tok: Tokenizer, sentences: list[str]) -> tuple[list[list[int]], list[list[int] | None]]:
    """One batched tokenizer call for all ``sentences``: the ids of each and, for a sentence written without spaces
    (:func:`written_without_spaces`), the positions of its :func:`spaceless_word_starts` (None for the others). A long
    sentence is encoded in pieces (:func:`sentence_pieces`): the same ids, but a string of megabytes takes the
    tokenizer several times longer than its pieces, and on one core (a 10 MB line without punctuation: 14 s whole,
    2 s in pieces)."""
    counts, flat = [], []
    for sentence in sentences:
        pieces = sentence_pieces(sentence)
        counts.append(len(pieces))
        flat.extend(pieces)
    encodings = tok.encodings(flat)
    ids = [e.ids for e in encodings]
    out, extra, i = [], [], 0
    for sentence, n in zip(sentences, counts, strict=True):
        out.append(ids[i] if n == 1 else [t for piece in ids[i : i + n] for t in piece])
        if written_without_spaces(sentence):
            starts, offset = [], 0
            for j in range(i, i + n):
                starts.extend(offset + p for p in spaceless_word_starts(flat[j], encodings[j].offsets))
                offset += len(ids[j])
            extra.append(starts)
        else:
            extra.append(None)
        i += n
    return out, extra


def encode_document(text: str, tok: Tokenizer, max_length: int) -> list[dict]:
    """Tokenize one document into chunks cut at sentence boundaries (``[]`` for an empty document).

    Each chunk has the fields of :class:`noising.Document` as lists: ``input_ids`` (``<s> ... </s>``, at most
    ``max_length`` long), ``word_starts`` (0/1, 0 at ``<s>``/``</s>``), ``sentence_starts`` (first is 1).
    """
    if max_length < 3:
        raise ValueError(f"max_length={max_length}: must be >= 3 (<s>, one token, </s>)")
    sentences, extra = _encode_sentences(tok, _sentence_texts(text))
    return _chunk(sentences, tok.word_start_table(), max_length, tok.bos_id, tok.eos_id, extra)


def encode_documents(texts: Iterable[str], tok: Tokenizer, max_length: int) -> list[list[dict]]:
    """:func:`encode_document` over many texts with one batched tokenizer call (the fast path)."""
    if max_length < 3:
        raise ValueError(f"max_length={max_length}: must be >= 3 (<s>, one token, </s>)")
    per_doc = [_sentence_texts(t) if isinstance(t, str) else [] for t in texts]
    flat, extra = _encode_sentences(tok, [s for doc in per_doc for s in doc])
    table = tok.word_start_table()
    out, i = [], 0
    for doc in per_doc:
        j = i + len(doc)
        out.append(_chunk(flat[i:j], table, max_length, tok.bos_id, tok.eos_id, extra[i:j]))
        i = j
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
GZIP = ".gz"
"""Text and JSON files may be gzipped (``corpus.jsonl.gz``, ``books.txt.gz``); ``datasets`` reads them as they are."""
READABLE = (
    ".txt, .text, .jsonl, .json, .parquet (text and JSON also gzipped: .txt.gz, .jsonl.gz, .json.gz), or a directory "
    "written by `datasets`' save_to_disk"
)
SAVED = "saved"
"""The kind of a directory written by ``datasets``' ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)."""


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Is ``path`` a directory written by ``Dataset.save_to_disk`` (``state.json`` + ``dataset_info.json``) or
    ``DatasetDict.save_to_disk`` (``dataset_dict.json``)?"""
    p = str(path)
    return os.path.isdir(p) and (
        (os.path.isfile(os.path.join(p, "state.json")) and os.path.isfile(os.path.join(p, "dataset_info.json")))
        or os.path.isfile(os.path.join(p, "dataset_dict.json"))
    )


def load_saved_dataset(path: str, split: str = "train") -> datasets.Dataset:
    """The ``Dataset`` a ``save_to_disk`` directory holds (memory-mapped, not read into memory); of a ``DatasetDict``,
    its ``split``. Raises ValueError naming the directory when it cannot be read or lacks ``split``."""
    import datasets

    try:
        ds = datasets.load_from_disk(path)
    except Exception as e:  # a damaged directory: name it
        raise ValueError(f"{path}: not a readable `datasets` directory ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{path}: a saved DatasetDict without a {split!r} split (splits: {sorted(ds)})")
        ds = ds[split]
    return ds


def file_suffix(path: str) -> str:
    """The format suffix of ``path`` in lower case, past a ``.gz``: ``.jsonl`` for ``part-1.JSONL.gz``."""
    root, ext = os.path.splitext(str(path).lower())
    return os.path.splitext(root)[1] if ext == GZIP else ext


def file_format(path: str, formats: dict[str, str] = LOCAL_SUFFIXES) -> str | None:
    """The ``datasets`` builder (``text``, ``json``, ...) reading ``path``, by its suffix in ``formats``; None if none
    does (a gzipped Parquet file is none: Parquet compresses inside)."""
    kind = formats.get(file_suffix(path))
    return None if kind == "parquet" and str(path).lower().endswith(GZIP) else kind


def open_bytes(path: str) -> IO[bytes]:
    """``path`` opened for reading bytes, gunzipped if its name ends in ``.gz``."""
    return gzip.open(path, "rb") if str(path).lower().endswith(GZIP) else open(path, "rb")


def open_text(path: str) -> IO[str]:
    """``path`` opened as UTF-8 text (gunzipped if its name ends in ``.gz``), a byte-order mark at its start dropped."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig")


def starts_with_bom(path: str) -> bool:
    """Does the (uncompressed) text of ``path`` start with a UTF-8 byte-order mark?"""
    with open_bytes(path) as f:
        return f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8


def builder_options(paths: list[str], kind: str) -> dict:
    """Keyword arguments of ``datasets.load_dataset(kind, data_files=paths)`` as this package reads local files: a
    ``.txt`` document per blank-line-separated block; a byte-order mark dropped (``utf-8-sig``, only when a file has
    one, so the builder's config and cache stay those of plain UTF-8 otherwise)."""
    options: dict = {"sample_by": "paragraph"} if kind == "text" else {}
    if kind in ("text", "json", "csv") and any(map(starts_with_bom, paths)):
        options["encoding"] = "utf-8-sig"
    return options


def _check_text_file(path: str) -> None:
    """Fail early, naming the file, on an empty, non-UTF-8 or broken gzip file (the builders fail deep inside)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    has_text = False
    offset = 0
    where = " of the uncompressed text" if str(path).lower().endswith(GZIP) else ""
    try:
        with open_bytes(path) as f:
            while block := f.read(1 << 20):
                try:
                    chunk = decoder.decode(block)
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"{path}: not UTF-8 text (invalid byte 0x{block[e.start]:02x} at byte offset "
                        f"{offset + e.start}{where}); convert it, e.g. `iconv -f latin1 -t utf-8`"
                    ) from None
                has_text = has_text or bool(chunk.lstrip(BOM).strip())
                offset += len(block)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a cut-off .gz ends in EOFError
        raise ValueError(f"{path}: not a readable gzip file ({type(e).__name__}: {e})") from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text (truncated multi-byte character at the end)") from None
    if not has_text:
        raise ValueError(f"{path}: the file is empty (no text to train on)")


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _by_format(files: list[str], formats: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for f in files:
        kind = SAVED if formats is LOCAL_SUFFIXES and is_saved_dataset(f) else file_format(f, formats)
        groups.setdefault(kind or "?", []).append(f)
    return groups


def directory_files(directory: str, formats: dict[str, str] = LOCAL_SUFFIXES, readable: str = READABLE) -> list[str]:
    """Every file under ``directory`` (recursively, sorted by path; names starting with ``.`` skipped), all of one
    format of ``formats``; a ``save_to_disk`` directory under it is one entry (not its files). Raises ValueError
    naming the directory when it holds no file, a file of no readable format, or files of several formats."""
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if formats is LOCAL_SUFFIXES:
            saved = [d for d in dirs if is_saved_dataset(os.path.join(root, d))]
            found.extend(os.path.join(root, d) for d in saved)
            dirs[:] = [d for d in dirs if d not in saved]
        found.extend(os.path.join(root, name) for name in names if not name.startswith("."))
    found.sort()
    if not found:
        raise ValueError(f"{directory}: the directory holds no file")
    groups = _by_format(found, formats)
    rel = {kind: [os.path.relpath(f, directory) for f in files] for kind, files in groups.items()}
    if "?" in rel:
        raise ValueError(f"{directory}: holds files of no readable format: {_some(rel['?'])}; readable: {readable}")
    if len(rel) > 1:
        listed = "; ".join(f"{kind}: {_some(names, 2)}" for kind, names in sorted(rel.items()))
        raise ValueError(f"{directory}: holds files of several formats ({listed}); keep one format per directory")
    return found


def local_files(
    source: str | os.PathLike | list, formats: dict[str, str] = LOCAL_SUFFIXES, readable: str = READABLE
) -> tuple[list[str], str]:
    """The files of a local ``source`` (a file, a directory, a glob, or a list of them) and the one ``datasets``
    builder reading them all. A directory stands for the files under it (:func:`directory_files`), except a directory
    written by ``save_to_disk``, which stands for itself (kind :data:`SAVED`, read with :func:`load_saved_dataset`);
    a glob for the files it matches (``**`` recursive), sorted. Raises ValueError naming the path and what is wrong:
    no such file, a pattern matching no file, a file of no readable format, formats mixed."""
    patterns = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not patterns:
        raise ValueError("no files given (an empty list)")
    files: list[str] = []
    for pattern in map(str, patterns):
        pattern = os.path.expanduser(pattern)
        if glob.has_magic(pattern):
            matches = [m for m in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(m)]
            if not matches:
                raise ValueError(f"{pattern}: the pattern matches no file")
            files.extend(matches)
        elif formats is LOCAL_SUFFIXES and is_saved_dataset(pattern):
            files.append(pattern)
        elif os.path.isdir(pattern):
            files.extend(directory_files(pattern, formats, readable))
        elif os.path.isfile(pattern):
            files.append(pattern)
        else:
            raise ValueError(f"{pattern}: no such file (looked for {os.path.abspath(pattern)})")
    groups = _by_format(files, formats)
    if "?" in groups:
        raise ValueError(f"{groups['?'][0]}: unknown file type; readable: {readable}")
    if len(groups) > 1:
        listed = "; ".join(f"{kind}: {_some(names, 2)}" for kind, names in sorted(groups.items()))
        raise ValueError(f"mixed file formats ({listed}); read one format at a time")
    return files, next(iter(groups))


def looks_local(source: str | list[str]) -> bool:
    if not isinstance(source, (str, os.PathLike)):
        return True
    s = str(source)
    return (
        os.path.exists(s)
        or glob.has_magic(s)
        or file_suffix(s) in LOCAL_SUFFIXES
        or s.lower().endswith(GZIP)
        or os.sep in s.rstrip(os.sep)
    )


def load_text_dataset(source: str | list[str], text_column: str = "text", split: str = "train") -> datasets.Dataset:
    """Load documents as a ``datasets.Dataset`` with a string column ``text_column``.

    ``source`` is a local file, a directory (every file under it, recursively, sorted, all of one format), a glob, or
    a list of them: ``.txt`` (one document per blank-line-separated block), ``.jsonl``/``.json`` (one object per
    line / a list, the text in ``text_column``), ``.parquet``, text and JSON also gzipped (``.txt.gz``,
    ``.jsonl.gz``, ``.json.gz``); a UTF-8 byte-order mark is dropped; or a directory written by ``datasets``'
    ``save_to_disk`` (of a ``DatasetDict``, its ``split``). Or else the name of a ``datasets`` dataset (hub, when
    online; ``split``). Problems (no such file, empty or non-UTF-8 file, formats mixed, missing or non-string column)
    raise ``ValueError`` naming the file and what is wrong.
    """
    import datasets

    if looks_local(source):
        paths, kind = local_files(source)
        if kind == SAVED:
            parts = [load_saved_dataset(p, split) for p in paths]
            ds = parts[0] if len(parts) == 1 else _concatenate(parts, paths)
            return _check_column(ds, text_column, _some(paths))
        for p in paths:
            if kind == "parquet":
                if os.path.getsize(p) == 0:
                    raise ValueError(f"{p}: the file is empty")
            else:
                _check_text_file(p)
        try:
            ds = datasets.load_dataset(kind, data_files=paths, split="train", **builder_options(paths, kind))
        except Exception as e:  # the builders' errors are long chains; keep the cause, name the files
            cause = e.__cause__ or e
            raise ValueError(f"could not read {_some(paths)} as {kind}: {type(cause).__name__}: {cause}") from e
        if kind == "text" and text_column != "text":
            ds = ds.rename_column("text", text_column)
        where = _some(paths)
    else:
        try:
            ds = datasets.load_dataset(str(source), split=split)
        except Exception as e:
            raise ValueError(
                f"{source!r}: not a local file and could not be loaded as a `datasets` dataset (split={split!r}): "
                f"{type(e).__name__}: {e}"
            ) from e
        where = str(source)
    return _check_column(ds, text_column, where)


def _check_column(ds: datasets.Dataset, text_column: str, where: str) -> datasets.Dataset:
    if text_column not in ds.column_names:
        raise ValueError(f"{where}: no column {text_column!r} (columns: {ds.column_names}); pass text_column=...")
    feature = ds.features[text_column]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise ValueError(f"{where}: column {text_column!r} holds {feature}, not strings")
    return ds


def _concatenate(parts: list[datasets.Dataset], paths: list[str]) -> datasets.Dataset:
    """Several saved datasets as one, in order; their columns must agree."""
    import datasets

    first = parts[0].features
    for path, part in zip(paths[1:], parts[1:], strict=True):
        if part.features != first:
            raise ValueError(f"{path}: columns {part.features} differ from {paths[0]}'s {first}")
    return datasets.concatenate_datasets(parts)


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


_FORMAT_VERSION = 3  # bump when the chunk format, sentence splitter or word starts change, to invalidate cached maps


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
