"""`bart-pretrain build-data --scale_corpus SIZE`: a large corpus from a small one (README "Large corpora"), tested at a
tiny size: the size and file count asked for, pass 0 the source shuffled, later passes perturbed copies of real
sentences, the same bytes for the same seed, readable as a corpus directory; bad sizes and an occupied --out refused
in one line."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from pretrain_world import make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.corpus.scaled import MANIFEST, parse_size, perturb
from bart_pretrain.data.files import load_text_dataset


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_world(root, n_train=60)
    return root / "train.jsonl"


def _scale(source: Path, out: Path, *args: str) -> int:
    return cli_main(["build-data", "--scale_corpus", "40KB", "--scale_from", str(source), "--out", str(out), *args])


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(out.glob("part-*.jsonl")) for line in p.read_text().splitlines()]


def test_a_scaled_corpus_has_the_size_and_files_asked_for_and_shuffled_perturbed_passes(source, tmp_path):
    texts = [json.loads(line)["text"] for line in source.read_text().splitlines()]
    out = tmp_path / "big"
    assert _scale(source, out, "--scale_files", "5") == 0
    parts = sorted(out.glob("part-*.jsonl"))
    assert [p.name for p in parts] == [f"part-{k:05d}.jsonl" for k in range(5)]
    sizes = [p.stat().st_size for p in parts]
    longest = max(len(json.dumps({"id": "99-99", "text": t}, ensure_ascii=False)) for t in texts) * 2
    assert 40_000 <= sum(sizes) < 40_000 + longest and all(8_000 <= s < 8_000 + longest for s in sizes[:-1])
    rows = _rows(out)
    first = rows[: len(texts)]
    assert sorted(r["text"] for r in first) == sorted(texts)  # pass 0: every source document once, shuffled
    assert [r["text"] for r in first] != texts
    later = rows[len(texts) :]
    assert len(later) > len(texts)  # more than one more pass
    for row in later:  # its own words, rotated; maybe a sentence of another document after them
        original = texts[int(row["id"].split("-")[1])]
        assert Counter(original.split()) <= Counter(row["text"].split())
    assert sum(r["text"] not in texts for r in later) > 0.5 * len(later)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["bytes"] == sum(sizes) and manifest["documents"] == len(rows) and manifest["seed"] == 0
    assert load_text_dataset(str(out))["text"] == [r["text"] for r in rows]  # a corpus directory (manifest hidden)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(source, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert _scale(source, tmp_path / name, "--scale_files", "3", "--seed", seed) == 0
    read = {n: b"".join(p.read_bytes() for p in sorted((tmp_path / n).glob("part-*"))) for n in "abc"}
    assert read["a"] == read["b"] != read["c"]


def test_perturb_rotates_at_a_sentence_end_and_may_append_another_documents_first_sentence():
    rng = random.Random(3)
    outs = {perturb("One two. Three four. Five six.", "Other first. Other second.", rng) for _ in range(50)}
    assert "Three four. Five six. One two." in outs and "Five six. One two. Three four." in outs
    assert "Five six. One two. Three four. Other first." in outs
    assert all("Other second." not in o for o in outs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale_corpus", "lots"], r"--scale_corpus 'lots': not a size; write e\.g\. 1GB, 200MB, 1\.5GiB"),
        (["--scale_corpus", "0MB"], r"--scale_corpus '0MB': not a size"),
        (["--scale_corpus", "1MB", "--scale_files", "0"], r"--scale_files 0: must be >= 1"),
    ],
)
def test_a_bad_size_or_file_count_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert cli_main(["build-data", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "x").exists()


def test_an_occupied_out_is_refused_unless_force_which_replaces_the_old_parts(source, tmp_path, capsys):
    out = tmp_path / "big"
    assert _scale(source, out, "--scale_files", "6") == 0
    before = (out / "part-00000.jsonl").read_bytes()
    capsys.readouterr()
    assert _scale(source, out, "--scale_files", "2", "--seed", "5") == 2
    assert capsys.readouterr().err.startswith(f"bart-pretrain build-data: error: --out {out} holds 7 entries (")
    assert (out / "part-00000.jsonl").read_bytes() == before
    assert _scale(source, out, "--scale_files", "2", "--seed", "5", "--force", "true") == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "part-00000.jsonl", "part-00001.jsonl"]


def test_parse_size_units():
    assert [parse_size(s) for s in ("1GB", "200mb", "1.5GiB", "4096", "2 KiB")] == [
        10**9,
        200 * 10**6,
        int(1.5 * 2**30),
        4096,
        2048,
    ]
