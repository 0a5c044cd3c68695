"""Fine-tuning pairs: loading from every source format, column mapping and errors, truncation, batches."""

import json

import pandas as pd
import pytest

from bart_pretrain.data.pairs import collate_pairs, encode_text, load_pairs
from bart_pretrain.data.pairs_module import PairsDataModule
from bart_pretrain.tokenizer import train_tokenizer

WORDS = "alpha beta gamma delta parser library tool image audio network file system python shell data".split()


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    rows = []
    for i in range(n):
        k = 3 + (i * 7 + seed) % 25  # documents of 3..27 words: varied lengths for bucketing
        doc = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(k)) + "."
        rows.append({"id": f"pkg{i}", "document": doc, "summary": " ".join(WORDS[i % len(WORDS) : i % len(WORDS) + 3])})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([r["document"] for r in make_pairs(50)] * 3, vocab_size=300)


@pytest.fixture
def pair_dir(tmp_path):
    for split, n in (("train", 40), ("validation", 12), ("test", 10)):
        write_jsonl(tmp_path / f"{split}.jsonl", make_pairs(n, seed=len(split)))
    return tmp_path


def test_load_pairs_reads_a_split_from_a_directory(pair_dir):
    ds = load_pairs(str(pair_dir), "validation")
    assert ds.column_names == ["source", "target"]
    assert len(ds) == 12


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_load_pairs_maps_columns_of_local_files(tmp_path, fmt):
    df = pd.DataFrame([{"article": r["document"], "highlights": r["summary"]} for r in make_pairs(5)])
    path = tmp_path / f"pairs.{fmt}"
    {"csv": lambda: df.to_csv(path, index=False), "parquet": lambda: df.to_parquet(path),
     "jsonl": lambda: df.to_json(path, orient="records", lines=True)}[fmt]()  # fmt: skip
    ds = load_pairs(str(path), "train", source_column="article", target_column="highlights")
    assert ds.column_names == ["source", "target"]
    assert ds[0] == {"source": df.article[0], "target": df.highlights[0]}


def test_missing_column_names_file_column_and_available_columns(pair_dir):
    with pytest.raises(ValueError) as e:
        load_pairs(str(pair_dir), "train", source_column="article")
    msg = str(e.value)
    assert "train.jsonl" in msg and "'article'" in msg and "--data.source_column" in msg
    assert "['document', 'id', 'summary']" in msg


def test_missing_split_file_lists_what_the_directory_holds(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", make_pairs(2))
    with pytest.raises(ValueError, match=r"no test split .*it holds: train\.jsonl$"):
        load_pairs(str(tmp_path), "test")


def test_encode_text_truncates_and_keeps_bos_eos(tokenizer):
    long, short = " ".join(WORDS * 4), "alpha"
    ids = encode_text(tokenizer, [long, short], max_length=8)
    assert len(ids[0]) == 8 and ids[0][0] == tokenizer.bos_id and ids[0][-1] == tokenizer.eos_id
    assert ids[1] == [tokenizer.bos_id, *tokenizer.encode(short), tokenizer.eos_id]


def test_collate_pads_labels_with_pad_so_they_carry_no_loss():
    batch = collate_pairs(
        [{"input_ids": [0, 5, 2], "labels": [0, 7, 8, 2]}, {"input_ids": [0, 2], "labels": [0, 2]}], 1
    )
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[0, 7, 8, 2], [0, 2, 1, 1]]


def test_datamodule_batches_respect_the_token_budget_and_cover_the_data(pair_dir, tokenizer):
    dm = PairsDataModule(source=str(pair_dir), max_source_length=16, max_target_length=8, max_tokens=64)
    dm.attach_tokenizer(tokenizer)
    dm.setup("fit")
    seen = 0
    for batch in dm.train_dataloader():
        b, s = batch["input_ids"].shape
        assert b * max(s, batch["labels"].shape[1]) <= 64
        assert s <= 16 and batch["labels"].shape[1] <= 8
        assert (batch["input_ids"][:, 0] == tokenizer.bos_id).all()
        seen += b
    assert seen == 40


def test_datamodule_subsets_are_fixed_by_the_seed(pair_dir, tokenizer):
    def subset(seed):
        dm = PairsDataModule(source=str(pair_dir), train_subset=10, metric_subset=4, seed=seed)
        dm.attach_tokenizer(tokenizer)
        return list(dm.pairs("train")["source"]), dm.metric_pairs()

    assert subset(0) == subset(0)
    assert subset(0)[0] != subset(1)[0]
    assert len(subset(0)[0]) == 10 and len(subset(0)[1][0]) == 4


def test_datamodule_drops_pairs_with_an_empty_side(tmp_path, tokenizer):
    rows = make_pairs(4) + [{"document": "", "summary": "x"}, {"document": "y", "summary": " "}]
    for split in ("train", "validation", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", rows)
    dm = PairsDataModule(source=str(tmp_path))
    dm.attach_tokenizer(tokenizer)
    assert len(dm.encoded_split("train")) == 4
