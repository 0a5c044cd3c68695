"""From documents to what the noising needs: sentences (``bart_pretrain.data.sentences``), token ids, word starts,
chunks of at most ``max_length`` tokens; one document (:func:`encode_document`), many (:func:`encode_documents`) or a
whole ``datasets.Dataset`` (:func:`tokenize_dataset`, cached). Reading the text is ``bart_pretrain.data.files``.

Word starts come from the tokenizer's own vocabulary: a byte-level BPE token starting with ``Ġ`` (or ``▁`` for
SentencePiece, anything but ``##`` for WordPiece) begins a word, and so does the first token of every sentence; in a
sentence written without spaces (Chinese, Japanese, Thai ...) every character begins a word.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from bart_pretrain.data.files import BOM
from bart_pretrain.data.sentences import spaceless_word_starts, split_sentences_glued, written_without_spaces
from noising.base import Document

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    import datasets

    from bart_pretrain.tokenizer import Tokenizer


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


def _sentence_texts(text: str) -> list[str]:
    # A byte-order mark opening a document is no text (datasets keeps it at the start of a .txt.gz, of a hub file).
    text = text[1:] if text.startswith(BOM) else text
    # Every sentence after the first gets its leading space back, so byte-level BPE sees " word" -> "Ġword"; not one
    # that followed the one before without a space (我喜欢猫。他喜欢狗！): the tokens are those of the text.
    return [s if i == 0 or glued else " " + s for i, (s, glued) in enumerate(split_sentences_glued(text))]


def encoder_text(text: str) -> str:
    """``text`` as the document encoder hands it to the tokenizer: its sentences, whitespace collapsed to single
    spaces, a byte-order mark dropped. A tokenizer trained on these texts learns the merges the documents use (no
    newline merges, and a word after a line break keeps the space before it)."""
    return "".join(_sentence_texts(text))


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
