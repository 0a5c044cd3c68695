"""Every shipped noise recipe parses into the pipeline it documents; load_noise (the parser of --data.noise) errors
are one line naming the file, the value and what is allowed; the built-ins are one tuple, the contract tests' list."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

import noising
from bart_pretrain.data.noise_config import RECIPE_DIR, explain, load_noise, recipe_of


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
    assert pipe.noises == [
        noising.TextInfilling(ratio=0.3, poisson_lambda=3.5, whole_words=True, replace_length=1, mask_random=0.1),
        noising.SentencePermutation(ratio=1.0),
    ]


def test_one_recipe_per_paper_noise():
    names = {p.stem for p in RECIPE_DIR.glob("*.yaml")}
    paper = {"token_masking", "token_deletion", "text_infilling", "sentence_permutation", "document_rotation"}
    assert paper <= names
    for name in paper:
        (noise,) = load_noise(name).noises
        assert type(noise).__name__ == name.title().replace("_", "") and type(noise) in noising.BUILTINS


def test_missing_recipe_lists_the_shipped_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped recipes: bart_large, .*token_masking"):
        load_noise(tmp_path / "nope.yaml")


def test_recipe_errors_name_the_file_and_the_noise(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("noises:\n  - class_path: noising.TextInfilling\n    init_args: {ratio: 1.5}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: TextInfilling.ratio=1.5: must be a number in \[0, 1\]$"):
        load_noise(bad)
    bad.write_text("noise:\n  - class_path: TextInfilling\n")
    with pytest.raises(ValueError, match="top level must be `noises:"):
        load_noise(bad)
    assert len(load_noise([{"class_path": "TokenDeletion"}])) == 1
    assert load_noise(Path("configs/noise/token_deletion.yaml")).noises == load_noise("token_deletion").noises


@pytest.mark.parametrize(
    ("noise", "message"),
    [
        ({"class_path": "text_infilling"}, "class_path: text_infilling is the former short name of "
         "noising.TextInfilling: write that instead"),
        ({"class_path": "text_infiling"}, "unknown noise 'text_infiling': name a noise by its import path "
         "(my_pkg.MyNoise) or by the class name of a built-in or installed one: DocumentRotation, GapSentences, "
         "PrefixLM, RandomInsertion, SentencePermutation, T5SpanCorruption, TextInfilling, TokenDeletion, "
         "TokenMasking, UL2Mixture"),
        ({"class_path": "TextInfilling", "init_args": {"lamda": 3}}, "Option 'lamda' is not accepted; TextInfilling's "
         "parameters: ratio, poisson_lambda, whole_words, replace_length, mask_random"),
        ({"class_path": "TokenMasking", "init_args": {"ratio": "a"}}, 'key "ratio": Expected a <class \'float\'>'),
        ({"class_path": "no_such_module.Noise"}, "No module named 'no_such_module'; a module of your own must be "
         "importable: put its directory on PYTHONPATH"),
        ({"class_pth": "TextInfilling"}, "Option 'class_pth' is not accepted; a noise is written {class_path: "),
        ({"class_path": "noising.Document"}, "Import path noising.Document does not correspond to a subclass of "
         "Corruption; a noise subclasses noising.Noise, an objective (last in a recipe) noising.Objective"),
    ],
)  # fmt: skip
def test_a_bad_noise_is_one_line_naming_the_file_the_value_and_what_is_allowed(tmp_path, noise, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"noises": [{"class_path": "TokenMasking"}, noise]}))
    with pytest.raises(ValueError) as err:
        load_noise(recipe)
    assert str(err.value).startswith(f"{recipe}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_explain_leaves_other_keys_messages_alone():
    message = 'Parser key "trainer.callbacks":\n  Expected a dot import path string: foo'
    assert explain(message) == message
    noise_message = message.replace("trainer.callbacks", "data.noise.noises")
    assert explain(noise_message).startswith(f"{noise_message}; unknown noise 'foo': name a noise by its import path")


def test_the_data_module_takes_a_pipeline_not_a_path():
    from bart_pretrain.data.pretrain_module import BART_LARGE, PretrainDataModule

    assert BART_LARGE == load_noise("bart_large") and PretrainDataModule().noise is BART_LARGE  # the default recipe
    with pytest.raises(TypeError, match=r"^data.noise='configs/noise/bart_large.yaml': must be a noising.Pipeline"):
        PretrainDataModule(noise="configs/noise/bart_large.yaml")


def test_a_noise_is_named_by_import_path_or_class_name_and_every_field_is_typed():
    short = load_noise([{"class_path": "TextInfilling", "init_args": {"ratio": 0.2}}, "SentencePermutation"])
    full = load_noise([{"class_path": "noising.text_infilling.TextInfilling", "init_args": {"ratio": 0.2}},
                       {"class_path": "noising.SentencePermutation"}])  # fmt: skip
    assert short == full == noising.Pipeline([noising.TextInfilling(ratio=0.2), noising.SentencePermutation()])
    assert load_noise(None) == load_noise({"noises": []}) == noising.Pipeline([])


def test_a_recipe_round_trips_through_its_plain_record():
    pipe = load_noise("bart_large")
    fields = {"ratio": 0.3, "poisson_lambda": 3.5, "whole_words": True, "replace_length": 1, "mask_random": 0.1}
    assert recipe_of(pipe)[0] == {"class_path": "noising.TextInfilling", "init_args": fields}
    assert load_noise(recipe_of(pipe)) == pipe


def test_the_builtins_are_the_noises_and_objectives_the_contract_tests_cover():
    from test_noising import NOISES, ZERO
    from test_objectives import BUILT_INS as OBJECTIVES  # each through check_objective

    assert len(set(noising.BUILTINS)) == len(noising.BUILTINS)
    noises = {c for c in noising.BUILTINS if issubclass(c, noising.Noise)}
    objectives = {c for c in noising.BUILTINS if issubclass(c, noising.Objective)}
    assert noises | objectives == set(noising.BUILTINS) and noises and objectives
    assert {type(n) for n in NOISES} == noises == set(ZERO)
    assert {type(o) for o in OBJECTIVES} == objectives
    bases = (noising.Noise, noising.Objective)
    assert set(noising.BUILTINS) == {c for c in vars(noising).values() if isinstance(c, type)
                                     and issubclass(c, bases) and c not in bases}  # fmt: skip


def test_a_pipeline_trusts_exactly_the_builtins():
    @dataclasses.dataclass(frozen=True)
    class Mine(noising.TokenMasking):  # a subclass of a built-in is a plug-in: checked on every call
        pass

    Mine.__module__ = "noising.lookalike"  # a module under noising/ does not make a noise a built-in either

    pipe = noising.Pipeline([noising.TokenMasking(), Mine(), noising.TextInfilling()])
    assert pipe.trusted == (True, False, True) and len(pipe.plugins) == 1 and pipe.plugins[0].endswith(".Mine")

    @dataclasses.dataclass(frozen=True)
    class MyPrefixLM(noising.PrefixLM):  # the same for an objective
        pass

    MyPrefixLM.__module__ = "noising.lookalike"
    pipe = noising.Pipeline([noising.TokenMasking(), noising.PrefixLM()])
    assert pipe.trusted == (True, True) and pipe.objective_trusted and pipe.plugins == ()
    pipe = noising.Pipeline([noising.TokenMasking(), MyPrefixLM()])
    assert pipe.trusted == (True, False) and not pipe.objective_trusted and pipe.plugins[0].endswith(".MyPrefixLM")


def test_noise_bench_prints_a_row_per_recipe(capsys):
    from bart_pretrain.bench import noise as bench

    bench.main(quick=True)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "M |" in line]
    assert [r.split(" |")[0][2:].split(" (")[0] for r in rows] == ["(sample_rng only)", *bench.RECIPES]


def test_every_recipe_keeps_the_contract_on_documents_from_the_data_pipeline():
    tokenizer = pytest.importorskip("bart_pretrain.tokenizer")
    from bart_pretrain.data.documents import encode_document, to_document
    from noising.testing import check_noise, check_objective

    texts = [
        "BART is trained by corrupting text. It learns to reconstruct it!  Does it work? Yes: very well.",
        "One sentence without an end",
        "Numbers 3.14 and e.g. abbreviations, U.S.A. style. Then\n\nnew paragraphs and ünïcödé.",
    ]
    tok = tokenizer.train_tokenizer(texts * 5, 300)
    docs = [to_document(c) for t in texts for c in encode_document(t, tok, 24)]
    assert len(docs) > 3
    ctx = tok.noise_context(24)
    objective_ctx = tok.with_objective_tokens().noise_context(24)  # as pretraining gives an objective recipe
    checked = 0
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        for step in load_noise(path).noises:
            if isinstance(step, noising.Objective):
                check_objective(step, objective_ctx, seeds=range(5), docs=docs)
                checked += 1
            else:
                check_noise(step, ctx, seeds=range(5), docs=docs)
    assert checked >= 4  # the shipped objective recipes
