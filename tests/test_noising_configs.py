"""Every shipped noise recipe parses into the pipeline it documents; load_noise errors are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import noising
from bart_pretrain.data.noise_config import RECIPE_DIR, load_noise


@pytest.mark.parametrize("path", sorted(RECIPE_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_builds_a_pipeline(path):
    assert len(load_noise(path)) >= (0 if path.stem == "identity" else 1)


def test_identity_recipe_returns_every_document_unchanged():
    doc = noising.Document(np.array([0, 5, 6, 7, 2]), np.ones(5, dtype=bool), np.array([1]))
    ctx = noising.NoiseContext(vocab_size=10, mask_id=9)
    out = load_noise("identity")(doc, noising.sample_rng(0, 0, 0), ctx)
    np.testing.assert_array_equal(out.tokens, doc.tokens)


def test_bart_large_recipe_is_the_papers():
    pipe = load_noise("configs/noise/bart_large.yaml")
    assert pipe.noises == (
        noising.TextInfilling(ratio=0.3, poisson_lambda=3.5, whole_words=True, replace_length=1, mask_random=0.1),
        noising.SentencePermutation(ratio=1.0),
    )


def test_one_recipe_per_paper_noise():
    names = {p.stem for p in RECIPE_DIR.glob("*.yaml")}
    paper = {"token_masking", "token_deletion", "text_infilling", "sentence_permutation", "document_rotation"}
    assert paper <= names
    for name in paper:
        (noise,) = load_noise(name).noises
        assert type(noise) is type(noising.build_pipeline([{"class_path": name}]).noises[0])


def test_missing_recipe_lists_the_shipped_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped recipes: bart_large, .*token_masking"):
        load_noise(tmp_path / "nope.yaml")


def test_recipe_errors_name_the_file_and_the_noise(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("noises:\n  - class_path: text_infilling\n    init_args: {ratio: 1.5}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: noises\[0\] \(text_infilling\): TextInfilling.ratio=1.5"):
        load_noise(bad)
    bad.write_text("noise:\n  - class_path: text_infilling\n")
    with pytest.raises(ValueError, match="top level must be `noises:"):
        load_noise(bad)
    assert len(load_noise([{"class_path": "token_deletion"}])) == 1
    assert load_noise(Path("configs/noise/token_deletion.yaml")).noises == load_noise("token_deletion").noises


def test_noise_bench_prints_a_row_per_recipe(capsys):
    from bart_pretrain.bench import noise as bench

    bench.main(quick=True)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "M |" in line]
    assert [r.split(" |")[0][2:].split(" (")[0] for r in rows] == ["(sample_rng only)", *bench.RECIPES]


def test_every_recipe_keeps_the_contract_on_documents_from_the_data_pipeline():
    tokenizer = pytest.importorskip("bart_pretrain.tokenizer")
    from bart_pretrain.data.documents import encode_document, to_document
    from noising.testing import check_noise

    texts = [
        "BART is trained by corrupting text. It learns to reconstruct it!  Does it work? Yes: very well.",
        "One sentence without an end",
        "Numbers 3.14 and e.g. abbreviations, U.S.A. style. Then\n\nnew paragraphs and ünïcödé.",
    ]
    tok = tokenizer.train_tokenizer(texts * 5, 300)
    docs = [to_document(c) for t in texts for c in encode_document(t, tok, 24)]
    assert len(docs) > 3
    ctx = tok.noise_context(24)
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        for noise in load_noise(path).noises:
            check_noise(noise, ctx, seeds=range(5), docs=docs)
