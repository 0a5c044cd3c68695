"""`bart-pretrain noise-preview`: provenance labels (masked, deleted, inserted, moved, random) and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import noising
from bart_pretrain.cli import main as cli_main
from bart_pretrain.commands import noise_preview
from bart_pretrain.commands.noise_preview import DELETED, INSERTED, KEPT, MASKED, MOVED, RANDOM, annotate, render
from noising import Document

RECIPE = "configs/noise/bart_large.yaml"  # relative to the working directory, the repository (pytest's rootdir)

CTX = noising.NoiseContext(mask_id=99, vocab_size=100, max_length=64)
DOC = Document.from_lists([0, 10, 11, 12, 13, 14, 15, 16, 17, 2], [0, 1, 0, 1, 1, 0, 1, 1, 1, 0], [1, 4, 7])


def labels(noise, seed=0):
    before, out, after = annotate(noising.Pipeline([noise]), DOC, seed, 0, 0, CTX)
    return before, out.tolist(), after


def test_deleted_tokens_are_marked_deleted_and_nothing_else_changes():
    before, out, after = labels(noising.TokenDeletion(ratio=0.3), seed=1)
    assert [t for t, b in zip(DOC.tokens.tolist(), before, strict=True) if b == DELETED] == [10, 11, 15]
    assert set(after) == {KEPT} and out == [0, 12, 13, 14, 16, 17, 2]


def test_a_span_replaced_by_one_mask_marks_the_span_masked():
    before, out, after = labels(noising.TextInfilling(mask_random=0.0), seed=3)
    assert out == [0, 99, 12, 13, 14, 15, 99, 17, 2]
    assert before == [KEPT, MASKED, MASKED, KEPT, KEPT, KEPT, KEPT, MASKED, KEPT, KEPT]
    assert after == [KEPT, MASKED, KEPT, KEPT, KEPT, KEPT, MASKED, KEPT, KEPT]


def test_inserted_and_random_tokens_are_told_apart():
    before, out, after = labels(noising.RandomInsertion(ratio=0.3, random_ratio=0.5))
    assert out == [0, 61, 10, 11, 99, 12, 13, 14, 99, 15, 16, 17, 2]
    assert [after[i] for i in (1, 4, 8)] == [INSERTED] * 3 and set(before) == {KEPT}
    _, out, after = labels(noising.TokenMasking(ratio=1.0, random_ratio=1.0))
    assert set(after[1:-1]) == {RANDOM}


def test_rotation_marks_one_part_moved_in_both_views():
    before, out, after = labels(noising.DocumentRotation())
    assert out == [0, 12, 13, 14, 15, 16, 17, 10, 11, 2]  # the shorter part, 10 11, is what moved
    moved_after = [t for t, a in zip(out, after, strict=True) if a == MOVED]
    assert moved_after == [10, 11]
    assert moved_after == [t for t, b in zip(DOC.tokens.tolist(), before, strict=True) if b == MOVED]


def test_render_uses_plain_markers_or_ansi_colours():
    decode = {0: b"<s>", 2: b"</s>", 10: b" a", 11: b" b", 99: b"<mask>"}.get
    assert render([0, 10, 11, 2], [KEPT, DELETED, DELETED, KEPT], decode, False) == "<s>[- a b-]</s>"
    assert render([0, 99, 2], [KEPT, MASKED, KEPT], decode, True) == "<s>\033[1;33m<mask>\033[0m</s>"


def test_missing_tokenizer_suggests_make_data(tmp_path, capsys):
    rc = cli_main(["noise-preview", "--noise", RECIPE, "--text", "Hi.", "--tokenizer_path", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "make data" in err
    line = f"bart-pretrain noise-preview: error: tokenizer not found: --tokenizer_path (looked for {tmp_path / 'x'})"
    assert err.startswith(line)


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    tokenizer = pytest.importorskip("bart_pretrain.tokenizer")
    text = "The quick brown fox jumps over the lazy dog. It was not amused. Then it left for good, and nobody saw it."
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tokenizer.train_tokenizer([text] * 20, 400).save(path)
    return path


def test_preview_shows_a_text_before_and_after_with_markers(tokenizer_file, capsys):
    text = "The quick brown fox jumps over the lazy dog. It was not amused. Then it left for good."
    argv = ["--noise", RECIPE, "--text", text, "--tokenizer_path", str(tokenizer_file)]
    assert noise_preview.main([*argv, "--seed", "3", "--color", "never"]) == 0
    out = capsys.readouterr().out
    before = next(line for line in out.splitlines() if line.startswith("  before: "))
    after = next(line for line in out.splitlines() if line.startswith("  after:  "))
    assert before.replace("[[", "").replace("]]", "").replace("[~", "").replace("~]", "") == f"  before: <s>{text}</s>"
    assert "[[<mask>]]" in after and "[~" in after
    assert noise_preview.main([*argv, "--seed", "3", "--color", "never"]) == 0
    assert capsys.readouterr().out == out  # a fixed seed shows the same noise


def test_preview_samples_a_jsonl_corpus(tokenizer_file, tmp_path, capsys):
    corpus = tmp_path / "validation.jsonl"
    corpus.write_text(
        '{"id": "a", "text": "One dog. Two cats."}\n{"id": "b", "text": "Red fox."}\n{"id": "c", "text": "x"}\n'
    )
    argv = ["--noise", "configs/noise/token_masking.yaml", "--corpus", str(corpus), "--n", "2"]
    assert noise_preview.main([*argv, "--tokenizer_path", str(tokenizer_file)]) == 0
    out = capsys.readouterr().out
    for marker in ("[[", "]]", "[?", "?]"):
        out = out.replace(marker, "")
    assert out.count("  before: ") == 2 and "<s>One dog. Two cats.</s>" in out and "<s>Red fox.</s>" in out


def test_stand_ins_equal_to_random_draws_do_not_confuse_provenance():
    for seed in range(30):  # a tiny vocabulary: random draws often hit a stand-in id
        ctx = noising.NoiseContext(mask_id=20, vocab_size=21, max_length=64)
        doc = Document.from_lists([0, *np.arange(5, 15).tolist(), 2])
        traced = annotate(noising.Pipeline([noising.TextInfilling(mask_random=0.5)]), doc, seed, 0, 0, ctx)
        before, out, after = traced
        assert all(a in (MASKED, RANDOM, INSERTED) for a, t in zip(after, out, strict=True) if t not in doc.tokens)


FIXTURES = Path(__file__).parent / "plugin_fixtures"
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 8)


def _plugin_recipe(tmp_path: Path, cls: str) -> str:
    (tmp_path / "recipe.yaml").write_text(f"noises:\n  - class_path: outside_noises.{cls}\n")
    return str(tmp_path / "recipe.yaml")


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (
            "GlobalRandomMask",
            r"GlobalRandomMask drew from numpy's global generator .*draw randomness only from the rng",
        ),
        ("DropsEosFromLongDocuments", r"DropsEosFromLongDocuments dropped <s> .*the rule: <s> stays first"),
    ],
)
def test_preview_names_a_misbehaving_plug_in_in_one_line(tokenizer_file, tmp_path, monkeypatch, capsys, cls, message):
    monkeypatch.syspath_prepend(str(FIXTURES))
    argv = ["--noise", _plugin_recipe(tmp_path, cls), "--text", LONG_TEXT, "--tokenizer_path", str(tokenizer_file)]
    assert cli_main(["noise-preview", *argv, "--seed", "3", "--color", "never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err) and "Traceback" not in err
