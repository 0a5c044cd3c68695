"""Local corpora in every reader (pretraining, in memory and streamed; train-tokenizer; noise-preview --corpus;
summarization pairs): a directory (recursive, sorted, one format), gzipped files, a UTF-8 byte-order mark; and the
one-line errors for a directory of mixed or unreadable formats, an empty one, a broken gzip file."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

import pytest
from pretrain_world import make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.commands import noise_preview
from bart_pretrain.data.documents import encode_documents
from bart_pretrain.data.files import check_stream_source, load_text_dataset, read_texts
from bart_pretrain.data.pairs import load_pairs
from bart_pretrain.data.pretrain_stream import StreamRows
from bart_pretrain.tokenizer import Tokenizer, train_tokenizer

BOM = codecs.BOM_UTF8


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def jsonl(*texts: str) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A directory of JSON files, some gzipped, some with a byte-order mark, one nested; a hidden file to skip."""
    d = tmp_path / "corpus"
    write(d / "b.jsonl", BOM + jsonl("Second file. Its text.", "Third doc."))
    write(d / "a.jsonl.gz", BOM + jsonl("First doc here."))
    write(d / "sub" / "c.json", BOM + json.dumps([{"text": "Nested list doc."}]).encode())
    write(d / "sub" / "d.json.gz", json.dumps([{"text": "Gzipped list doc."}]).encode())
    write(d / ".DS_Store", b"\x00\x01")
    return d


EXPECTED = ["First doc here.", "Second file. Its text.", "Third doc.", "Nested list doc.", "Gzipped list doc."]


def test_a_directory_is_every_file_under_it_in_sorted_order_gzip_and_bom_included(corpus):
    assert load_text_dataset(str(corpus))["text"] == EXPECTED
    assert load_text_dataset([str(corpus / "sub"), str(corpus / "a.jsonl.gz")])["text"] == [*EXPECTED[3:], EXPECTED[0]]


def test_txt_files_plain_and_gzipped_with_a_bom_give_the_same_documents(tmp_path):
    text = "First para. Still first.\n\nSecond para.\n"
    write(tmp_path / "plain" / "a.txt", text.encode())
    write(tmp_path / "bom" / "a.txt", BOM + text.encode())
    write(tmp_path / "gz" / "a.txt.gz", BOM + text.encode())
    tok = train_tokenizer([text] * 10, 300)
    chunks = [encode_documents(load_text_dataset(str(tmp_path / d))["text"], tok, 64) for d in ("plain", "bom", "gz")]
    assert chunks[0] == chunks[1] == chunks[2] and len(chunks[0]) == 2


def test_a_streamed_directory_reads_the_same_rows(corpus):
    check_stream_source(str(corpus))
    assert [row["text"] for row in StreamRows(str(corpus), "text")()] == EXPECTED


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.jsonl": jsonl("x"), "b.txt": b"y\n", "c/d.txt": b"z\n"},
         r"^{d}: holds files of several formats \(json: a\.jsonl; text: b\.txt, c/d\.txt\); keep one format per "
         r"directory$"),
        ({"a.jsonl": jsonl("x"), "notes.md": b"# notes\n"},
         r"^{d}: holds files of no readable format: notes\.md; readable: \.txt, \.text, \.jsonl, \.json, \.csv, "
         r"\.parquet \(all but Parquet also gzipped: \.txt\.gz, \.jsonl\.gz, \.json\.gz, \.csv\.gz\), or a directory "
         r"written by `datasets`' save_to_disk$"),
        ({".hidden": b"x"}, r"^{d}: the directory holds no file$"),
        ({"a.parquet.gz": b"x"}, r"^{d}: holds files of no readable format: a\.parquet\.gz; readable: "),
    ],
    ids=["mixed", "unreadable", "empty", "gzipped-parquet"],
)  # fmt: skip
def test_a_directory_of_mixed_or_unreadable_formats_is_one_line_naming_them(tmp_path, files, message):
    d = tmp_path / "corpus"
    d.mkdir()
    for name, data in files.items():
        write(d / name, data)
    with pytest.raises(ValueError, match=message.format(d=d)):
        load_text_dataset(str(d))
    with pytest.raises(ValueError, match=message.format(d="--data.train_files: " + str(d))):
        check_stream_source(str(d))


def test_a_broken_gzip_file_is_named(tmp_path):
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    cut = gzip.compress(jsonl("A document long enough to be cut. " * 20))[:40]
    (tmp_path / "cut.txt.gz").write_bytes(cut)
    with pytest.raises(ValueError, match=r"bad\.jsonl\.gz: not a readable gzip file \(BadGzipFile: Not a gzipped"):
        load_text_dataset(str(tmp_path / "bad.jsonl.gz"))
    with pytest.raises(ValueError, match=r"cut\.txt\.gz: not a readable gzip file \(EOFError: "):
        load_text_dataset(str(tmp_path / "cut.txt.gz"))
    with pytest.raises(ValueError, match=r"^--data\.train_files: .*bad\.jsonl\.gz: not a readable gzip file"):
        check_stream_source(str(tmp_path / "bad.jsonl.gz"))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_world(root, trainer__max_steps=2)
    return root


@pytest.mark.parametrize("streaming", ["false", "true"])
def test_pretraining_reads_directories_of_gzipped_files(world, tmp_path, streaming):
    rows = [json.loads(line) for line in (world / "train.jsonl").read_text().splitlines()]
    for part in range(3):  # the world's corpus in three gzipped parts, one nested
        name = f"p{part}.jsonl.gz" if part < 2 else f"more/p{part}.jsonl.gz"
        write(tmp_path / "train" / name, BOM + "".join(json.dumps(r) + "\n" for r in rows[part::3]).encode())
    write(tmp_path / "val" / "v.txt.gz", (world / "validation.jsonl").read_bytes().replace(b"\n", b"\n\n"))
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(tmp_path / "run")]
    args += ["--data.train_files", str(tmp_path / "train"), "--data.val_files", str(tmp_path / "val")]
    assert cli_main([*args, "--data.streaming", streaming]) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_train_tokenizer_reads_a_directory_and_names_the_flag_on_a_mixed_one(tmp_path, capsys):
    for k in range(3):  # datasets keeps the byte-order mark of a .txt.gz: it must not become tokens
        write(tmp_path / "books" / f"{k}.txt.gz", BOM + f"Book {k} starts here.\n\nAnd goes on.\n".encode())
    out = tmp_path / "tok"
    assert (
        cli_main(["train-tokenizer", "--files", str(tmp_path / "books"), "--vocab_size", "300", "--out", str(out)]) == 0
    )
    assert "trained on 6 documents" in capsys.readouterr().out
    tok = Tokenizer.from_file(out)
    assert not any(BOM[:2] in tok.token_bytes(i) for i in range(tok.vocab_size))
    write(tmp_path / "books" / "x.jsonl", jsonl("text"))
    assert cli_main(["train-tokenizer", "--files", str(tmp_path / "books"), "--out", str(tmp_path / "t2")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"bart-pretrain train-tokenizer: error: --files: {tmp_path / 'books'}: holds files of several formats (json: "
        "x.jsonl; text: 0.txt.gz, 1.txt.gz (+1 more)); keep one format per directory\n"
    )


def test_train_tokenizer_learns_from_the_text_the_document_encoder_sees(tmp_path):
    # Wrapped lines and runs of spaces: the encoder collapses them, so the tokenizer must be trained on the same text
    # (trained on the raw text it would spend ids on newlines and see a word after a line break without its space).
    raw = ["Alpha beta\ngamma delta.\n\nEpsilon  zeta\n  eta theta.", "Iota kappa\nlambda mu. Nu xi\nomicron."] * 20
    write(tmp_path / "c.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in raw).encode())
    out = tmp_path / "tok"
    argv = ["train-tokenizer", "--files", str(tmp_path / "c.jsonl"), "--vocab_size", "300", "--out", str(out)]
    assert cli_main(argv) == 0
    collapsed = [" ".join(t.split()) for t in raw]
    assert collapsed[0] == "Alpha beta gamma delta. Epsilon zeta eta theta."
    train_tokenizer(collapsed, 300).save(tmp_path / "expected.json")
    assert (out / "tokenizer.json").read_text() == (tmp_path / "expected.json").read_text()
    tok = Tokenizer.from_file(out)
    assert [t for i in range(tok.vocab_size) if b"\n" in (t := tok.token_bytes(i))] == [b"\n"]  # the byte alone


def test_noise_preview_reads_a_directory_gzip_and_bom_and_names_a_bad_row(corpus, tmp_path, capsys):
    tok = tmp_path / "tok.json"
    train_tokenizer(EXPECTED * 10, 300).save(tok)
    argv = ["--noise", "configs/noise/identity.yaml", "--tokenizer_path", str(tok), "--color", "never", "--n", "3"]
    assert noise_preview.main([*argv, "--corpus", str(corpus)]) == 0
    befores = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  before: ")]
    assert befores == [f"  before: <s>{t}</s>" for t in EXPECTED[:3]]
    write(tmp_path / "bad" / "rows.jsonl.gz", b'{"body": "no text"}\n')
    assert cli_main(["noise-preview", *argv, "--corpus", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    bad = tmp_path / "bad" / "rows.jsonl.gz"
    assert (
        err == f"bart-pretrain noise-preview: error: --corpus: {bad}: no column 'text'; the columns present: ['body']\n"
    )


def test_fine_tuning_pairs_read_gzip_bom_and_a_split_folder(tmp_path):
    pair = {"document": "A long document.", "summary": "Short."}
    write(tmp_path / "train.jsonl.gz", BOM + (json.dumps(pair) + "\n").encode())
    write(tmp_path / "validation.csv", BOM + b"document,summary\nAnother document.,Other.\n")
    write(tmp_path / "test" / "b.jsonl", (json.dumps(pair) + "\n").encode())
    write(tmp_path / "test" / "a.json", BOM + json.dumps([{"document": "Listed.", "summary": "L."}]).encode())
    row = {"source": "A long document.", "target": "Short."}
    assert load_pairs(str(tmp_path), "train").to_list() == [row]
    assert load_pairs(str(tmp_path), "validation").to_list() == [{"source": "Another document.", "target": "Other."}]
    assert load_pairs(str(tmp_path), "test").to_list() == [{"source": "Listed.", "target": "L."}, row]
    write(tmp_path / "train.csv", b"document,summary\nx,y\n")
    with pytest.raises(ValueError, match=r"holds several train files \(train\.csv, train\.jsonl\.gz\); keep one$"):
        load_pairs(str(tmp_path), "train")


# --- Parquet shards and `datasets` save_to_disk directories -------------------------------------------------------


def _parquet(path: Path, texts: list[str], column: str = "text") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(len(texts))), column: texts}), path)
    return path


def _saved(path: Path, texts: list[str], split: str | None = None, column: str = "text") -> Path:
    import datasets

    ds = datasets.Dataset.from_dict({"id": list(range(len(texts))), column: texts})
    (datasets.DatasetDict({split: ds}) if split else ds).save_to_disk(str(path))
    return path


@pytest.fixture
def shaped(tmp_path) -> dict[str, str]:
    """The same five documents as Parquet shards (one nested), a saved Dataset, a saved DatasetDict and a directory
    of saved Datasets."""
    _parquet(tmp_path / "shards" / "part-0.parquet", EXPECTED[:2])
    _parquet(tmp_path / "shards" / "part-1.parquet", EXPECTED[2:4])
    _parquet(tmp_path / "shards" / "sub" / "part-2.parquet", EXPECTED[4:])  # sorted by path: last
    _saved(tmp_path / "saved", EXPECTED)
    _saved(tmp_path / "saved_dict", EXPECTED, split="train")
    _saved(tmp_path / "saved_parts" / "a", EXPECTED[:3])
    _saved(tmp_path / "saved_parts" / "b", EXPECTED[3:])
    return {name: str(tmp_path / name) for name in ("shards", "saved", "saved_dict", "saved_parts")}


@pytest.mark.parametrize("name", ["shards", "saved", "saved_dict", "saved_parts"])
def test_parquet_shards_and_saved_datasets_give_the_same_documents_in_memory_and_streamed(shaped, name):
    assert load_text_dataset(shaped[name])["text"] == EXPECTED
    check_stream_source(shaped[name])
    assert [row["text"] for row in StreamRows(shaped[name], "text")()] == EXPECTED
    assert read_texts(shaped[name], 2) == EXPECTED[:2]


def test_fine_tuning_pairs_read_a_saved_dataset_dict_and_parquet_split_folders(tmp_path):
    import datasets

    rows = {s: [{"synopsis": f"{s} tool {i}", "package": f"{s}{i}"} for i in range(3)] for s in ("train", "test")}
    datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows.items()}).save_to_disk(tmp_path / "saved")
    for split in ("train", "test"):
        got = load_pairs(str(tmp_path / "saved"), split, "synopsis", "package").to_list()
        assert got == [{"source": r["synopsis"], "target": r["package"]} for r in rows[split]]
    with pytest.raises(ValueError, match=r"saved: a saved DatasetDict without a 'validation' split \(splits: "):
        load_pairs(str(tmp_path / "saved"), "validation", "synopsis", "package")
    _parquet(tmp_path / "shards" / "train" / "part-0.parquet", ["a", "b"], column="synopsis")
    with pytest.raises(ValueError, match=r"part-0\.parquet: no column 'package' \(--data\.target_column\); the columns "
                       r"present: \['id', 'synopsis'\]$"):  # fmt: skip
        load_pairs(str(tmp_path / "shards"), "train", "synopsis", "package")
    write(tmp_path / "odd" / "train.tsv", b"a\tb\n")
    with pytest.raises(
        ValueError, match=r"odd: no train split \(looked for train\.<txt\|text\|jsonl\|json\|csv\|parquet>"
    ):
        load_pairs(str(tmp_path / "odd"), "train")


def test_a_saved_dataset_is_refused_with_the_errors_of_any_file(tmp_path, shaped):
    body = _saved(tmp_path / "body", ["x"], column="body")
    message = rf"{body}: no column 'text' \(FLAG\); the columns present: \['body', 'id'\]$"
    with pytest.raises(ValueError, match="^" + message.replace("FLAG", "text_column")):
        load_text_dataset(str(body))
    with pytest.raises(ValueError, match="^--data.train_files: " + message.replace("FLAG", "--data.text_column")):
        check_stream_source(str(body))
    numbers = _saved(tmp_path / "numbers", ["x"])
    with pytest.raises(ValueError, match=r"numbers: column 'id' holds Value\('int64'\), not strings \(text_column\)$"):
        load_text_dataset(str(numbers), text_column="id")
    splits = _saved(tmp_path / "splits", ["x"], split="validation")
    with pytest.raises(ValueError, match=rf"^{splits}: a saved DatasetDict without a 'train' split \(splits: "):
        load_text_dataset(str(splits))
    assert load_text_dataset(str(splits), split="validation")["text"] == ["x"]
    write(tmp_path / "rows.jsonl", jsonl("y"))
    with pytest.raises(ValueError, match=r"^mixed file formats \(json: .*rows\.jsonl; saved: .*saved\)"):
        load_text_dataset([shaped["saved"], str(tmp_path / "rows.jsonl")])
    _saved(Path(shaped["saved_parts"]) / "b", ["z"], column="body")
    with pytest.raises(ValueError, match=r"saved_parts/b: columns .* differ from .*saved_parts/a's"):
        load_text_dataset(shaped["saved_parts"])


@pytest.mark.parametrize("streaming", ["false", "true"])
@pytest.mark.parametrize("form", ["parquet", "saved"])
def test_pretraining_reads_parquet_shards_and_saved_datasets(world, tmp_path, form, streaming):
    rows = [json.loads(line) for line in (world / "train.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in rows]
    train = tmp_path / "train"
    for part in range(3):
        if form == "parquet":
            _parquet(train / f"part-{part}.parquet", texts[part::3])
        else:
            _saved(train / f"part-{part}", texts[part::3])
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(tmp_path / "run")]
    args += ["--data.train_files", str(train), "--data.streaming", streaming]
    assert cli_main(args) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
