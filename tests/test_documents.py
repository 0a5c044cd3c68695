"""Documents: sentence splitting, chunking invariants, word starts, loading text and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bart_pretrain.data.documents import (
    PIECE_CHARS,
    encode_document,
    encode_documents,
    sentence_pieces,
    to_document,
    tokenize_dataset,
)
from bart_pretrain.data.files import load_text_dataset
from bart_pretrain.data.sentences import split_sentences
from bart_pretrain.metrics import lead, rouge
from bart_pretrain.tokenizer import train_tokenizer
from noising.base import Document

CORPUS = [
    "Dr. Smith moved to the U.S. in 1999. He paid $3.50 for coffee, e.g. at No. 5 Main St. every day!",
    "Sentence permutation needs sentences. Text infilling needs words.\n\nA new paragraph starts here",
    "Install it with:\n - pip install foo\n - make test\nThen run setup.py to finish.",
] * 30


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, 350)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world. This is a test.", ["Hello world.", "This is a test."]),
        ("Dr. Smith went to Washington. He stayed.", ["Dr. Smith went to Washington.", "He stayed."]),
        ("Use e.g. grep or i.e. sed here. Next one.", ["Use e.g. grep or i.e. sed here.", "Next one."]),
        ("Pi is 3.14 and v2.0 is out. Open setup.py now.", ["Pi is 3.14 and v2.0 is out.", "Open setup.py now."]),
        ("See Fig. 3 for details. Done!", ["See Fig. 3 for details.", "Done!"]),
        ("J. R. R. Tolkien wrote it. Really?", ["J. R. R. Tolkien wrote it.", "Really?"]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("The tool. it is lowercase", ["The tool. it is lowercase"]),
        ("A heading\n\nA paragraph without a stop", ["A heading", "A paragraph without a stop"]),
        ("Features:\n - fast\n - small\n1. first", ["Features:", "- fast", "- small", "1. first"]),
        ("Wrapped\nline continues. Next.", ["Wrapped line continues.", "Next."]),
        ("   \n\n  ", []),
        ("", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_split_sentences_keeps_every_word():
    text = " ".join(CORPUS)
    assert " ".join(split_sentences(text)).split() == text.split()


def test_lead_and_rouge():
    assert lead("First one here. Second one.") == "First one here."
    assert lead("") == ""
    scores = rouge(["the cat sat"], ["the cat sat"])
    assert scores == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    assert rouge(["cats running"], ["cat runs"])["rouge1"] == 100.0  # stemming
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])


def _check_chunk(chunk: dict, max_length: int):
    ids, ws, ss = chunk["input_ids"], chunk["word_starts"], chunk["sentence_starts"]
    assert ids[0] == 0 and ids[-1] == 2 and 3 <= len(ids) <= max_length
    assert len(ws) == len(ids) and ws[0] == 0 and ws[-1] == 0
    assert ss[0] == 1 and all(np.diff(ss) > 0) and ss[-1] < len(ids) - 1
    assert all(ws[s] == 1 for s in ss)  # every sentence begins a word
    doc = to_document(chunk)
    assert isinstance(doc, Document) and doc.tokens.dtype == np.int64 and doc.word_starts.dtype == bool


@pytest.mark.parametrize("max_length", [3, 8, 20, 64, 1024])
def test_chunks_respect_max_length_and_keep_every_token(tok, max_length):
    text = " ".join(CORPUS[:6])
    chunks = encode_document(text, tok, max_length)
    for chunk in chunks:
        _check_chunk(chunk, max_length)
    sentences = [s if i == 0 else " " + s for i, s in enumerate(split_sentences(text))]
    expected = [t for ids in tok.encode_batch(sentences) for t in ids]
    assert [t for c in chunks for t in c["input_ids"][1:-1]] == expected
    if max_length == 1024:
        assert len(chunks) == 1 and len(chunks[0]["sentence_starts"]) == len(sentences)


def test_chunks_cut_at_sentence_boundaries_when_sentences_fit(tok):
    text = "One short sentence here. Another short sentence here. A third short sentence here."
    lengths = [len(tok.encode(s if i == 0 else " " + s)) for i, s in enumerate(split_sentences(text))]
    chunks = encode_document(text, tok, max(lengths) + 2)
    assert [len(c["input_ids"]) - 2 for c in chunks] == lengths  # one sentence per chunk, none cut


def test_a_sentence_longer_than_max_length_is_split_hard(tok):
    text = "word " * 200
    chunks = encode_document(text, tok, 16)
    assert len(chunks) > 1
    for chunk in chunks:
        _check_chunk(chunk, 16)


def test_a_long_sentence_is_tokenized_in_pieces_into_the_same_ids(tok):
    sentence = " ".join(["Sentence permutation needs sentences, text infilling needs words"] * 200)  # ~13k chars
    assert len(sentence) > 3 * PIECE_CHARS and len(split_sentences(sentence)) == 1
    pieces = sentence_pieces(sentence)
    assert "".join(pieces) == sentence and max(map(len, pieces)) <= PIECE_CHARS
    assert all(p.startswith(" ") for p in pieces[1:])  # cut just before a space: where the pre-tokenizer cuts too
    whole = tok.encode(sentence)
    (chunk,) = encode_document(sentence, tok, len(whole) + 2)
    assert chunk["input_ids"][1:-1] == whole


def test_a_run_without_spaces_longer_than_a_piece_is_cut_where_it_must():
    assert [len(p) for p in sentence_pieces("x" * 10, size=4)] == [4, 4, 2]
    assert sentence_pieces("ab cdefgh ij", size=4) == ["ab", " cde", "fgh", " ij"]
    assert sentence_pieces("short", size=4096) == ["short"]


def test_word_starts_follow_byte_level_spaces(tok):
    text = "Sentence permutation needs sentences. Text infilling needs words."
    (chunk,) = encode_document(text, tok, 128)
    pieces = [tok.backend.id_to_token(i) for i in chunk["input_ids"][1:-1]]
    expected = [1] + [int(p.startswith("Ġ")) for p in pieces[1:]]
    assert chunk["word_starts"][1:-1] == expected
    assert sum(chunk["word_starts"]) == len(text.split())


def test_empty_documents_give_no_chunks_and_batch_matches_single(tok):
    assert encode_document("  \n\n ", tok, 64) == []
    texts = ["", CORPUS[0], CORPUS[1]]
    assert encode_documents(texts, tok, 32) == [encode_document(t, tok, 32) for t in texts]
    with pytest.raises(ValueError, match="max_length=2"):
        encode_document("x", tok, 2)


def test_load_txt_jsonl_parquet_and_globs(tmp_path):
    (tmp_path / "a.txt").write_text("First doc line one.\nline two.\n\nSecond doc.\n")
    ds = load_text_dataset(str(tmp_path / "a.txt"))
    assert [t.strip() for t in ds["text"]] == ["First doc line one.\nline two.", "Second doc."]
    for i in range(2):
        (tmp_path / f"p{i}.jsonl").write_text(json.dumps({"body": f"doc {i}", "n": i}) + "\n")
    ds = load_text_dataset(str(tmp_path / "p*.jsonl"), text_column="body")
    assert sorted(ds["body"]) == ["doc 0", "doc 1"]
    ds.to_parquet(str(tmp_path / "d.parquet"))
    assert sorted(load_text_dataset([str(tmp_path / "d.parquet")], text_column="body")["body"]) == ["doc 0", "doc 1"]


@pytest.mark.parametrize(
    ("name", "content", "column", "message"),
    [
        ("empty.txt", b"", "text", "empty.txt: the file is empty"),
        ("blank.jsonl", b"\n  \n", "text", "blank.jsonl: the file is empty"),
        ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "text", "latin1.txt: not UTF-8 text"),
        ("missing.jsonl", b'{"body": "x"}\n', "text", "no column 'text'"),
        ("numbers.jsonl", b'{"text": 5}\n', "text", "column 'text' holds"),
        ("broken.jsonl", b'{"text": "x"\n', "text", "broken.jsonl"),
        ("doc.xml", b"<text>x</text>\n", "text", r"unknown file type; readable: \.txt, .*\.csv, \.parquet"),
    ],
)
def test_bad_input_files_raise_clear_errors(tmp_path, name, content, column, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_text_dataset(str(tmp_path / name), text_column=column)


def test_missing_files_and_empty_globs_raise(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_text_dataset(str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="matches no file"):
        load_text_dataset(str(tmp_path / "*.jsonl"))


def test_tokenize_dataset_is_chunked_and_cached(tok, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in [*CORPUS[:3], ""]))
    ds = load_text_dataset(str(path))
    out = tokenize_dataset(ds, tok, 24)
    assert out.column_names == ["input_ids", "word_starts", "sentence_starts"]
    expected = [c for t in ds["text"] for c in encode_document(t, tok, 24)]
    assert out.to_list() == expected
    again = tokenize_dataset(ds, tok, 24)
    assert again._fingerprint == out._fingerprint and again.cache_files == out.cache_files
    assert tokenize_dataset(ds, tok, 32)._fingerprint != out._fingerprint
    with pytest.raises(ValueError, match="no column 'body'"):
        tokenize_dataset(ds, tok, 24, text_column="body")
