"""Plug-ins written outside the repo: by import path, through an installed package's entry point, the README's
worked example; and the registry's errors (unknown names, duplicates, non-noises, bad init_args)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import noising
from bart_pretrain.data.noise_config import load_noise
from noising import Document, build_pipeline, sample_rng
from noising.testing import DEFAULT_CONTEXT as CTX
from noising.testing import check_noise

FIXTURES = Path(__file__).parent / "plugin_fixtures"
SITE = FIXTURES / "site"  # holds tiny_noise_pkg and its .dist-info: "installed" once this is on sys.path
README = Path(__file__).parent.parent / "README.md"
DOC = Document.from_lists([0, 10, 11, 12, 13, 14, 15, 2], sentence_starts=[1, 4])


@pytest.fixture
def outside(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.syspath_prepend(str(SITE))


def fake_dist(root: Path, dist: str, entry_points: str) -> None:
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[bart_pretrain.noising]\n{entry_points}\n")


def test_a_class_in_an_outside_module_runs_by_import_path(outside):
    pipe = build_pipeline([{"class_path": "outside_noises.MaskEveryNth", "init_args": {"n": 2}}])
    assert pipe(DOC, sample_rng(0, 0, 0), CTX).tokens.tolist() == [0, 99, 11, 99, 13, 99, 15, 2]
    pipe = build_pipeline([{"class_path": "outside_noises:MaskEveryNth"}, {"class_path": "sentence_permutation"}])
    assert [type(n).__name__ for n in pipe.noises] == ["MaskEveryNth", "SentencePermutation"]
    check_noise(pipe.noises[0])


def test_an_installed_package_exposes_its_noise_by_short_name(installed):
    assert "word_dropout" in noising.available()
    assert "tiny-noise-pkg" in noising.available()["word_dropout"]
    pipe = build_pipeline([{"class_path": "text_infilling"}, {"class_path": "word_dropout", "init_args": {"p": 0.5}}])
    out = pipe(DOC, sample_rng(1, 0, 0), CTX)
    assert out.tokens[0] == 0 and out.tokens[-1] == 2 and len(out) < len(DOC)
    check_noise(pipe.noises[1])


def test_an_installed_package_works_in_a_fresh_interpreter_and_from_a_yaml_recipe(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("noises:\n  - class_path: word_dropout\n    init_args: {p: 0.3}\n")
    code = textwrap.dedent(f"""
        from bart_pretrain.data.noise_config import load_noise
        from noising import Document, sample_rng
        from noising.testing import DEFAULT_CONTEXT
        pipe = load_noise({str(recipe)!r})
        print(type(pipe.noises[0]).__module__, pipe(Document.from_lists([0, *range(5, 45), 2]), sample_rng(0, 0, 0),
              DEFAULT_CONTEXT).tokens.size < 42)
    """)
    env = {"PYTHONPATH": str(SITE), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tiny_noise_pkg", "True"]


def test_unknown_name_lists_every_available_noise(installed):
    with pytest.raises(ValueError) as err:
        build_pipeline([{"class_path": "text_infiling"}])
    for name in ["document_rotation", "random_insertion", "sentence_permutation", "text_infilling", "word_dropout"]:
        assert name in str(err.value)


def test_two_packages_claiming_one_name_break_only_that_name(tmp_path, monkeypatch):
    fake_dist(tmp_path, "pkg_one", "shuffle = pkg_one:Shuffle")
    fake_dist(tmp_path, "pkg_two", "shuffle = pkg_two.noise:Other")
    monkeypatch.syspath_prepend(str(tmp_path))
    pipe = build_pipeline([{"class_path": "text_infilling"}, {"class_path": "token_masking"}])  # built-ins work
    assert [type(n).__name__ for n in pipe.noises] == ["TextInfilling", "TokenMasking"]
    assert "shuffle" not in noising.available() and len(noising.registry.clashes()["shuffle"]) == 2
    with pytest.raises(
        ValueError, match=r"'shuffle' is defined twice: by .*pkg_one:Shuffle.* and by .*pkg_two\.noise:Other"
    ):
        build_pipeline([{"class_path": "shuffle"}])
    with pytest.raises(ValueError, match=r"unknown noise 'shufle'; .*claimed twice, so unusable: shuffle"):
        build_pipeline([{"class_path": "shufle"}])


def test_a_package_cannot_take_a_built_in_name(tmp_path, monkeypatch):
    fake_dist(tmp_path, "hijack", "text_infilling = hijack:Mine")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"'text_infilling' is defined twice: by built-in .*hijack:Mine"):
        build_pipeline([{"class_path": "text_infilling"}])
    assert type(build_pipeline([{"class_path": "token_masking"}]).noises[0]) is noising.TokenMasking


def test_register_is_strict_about_duplicates(outside):
    from outside_noises import MaskEveryNth

    noising.register("mask_every_nth", MaskEveryNth)
    try:
        assert type(build_pipeline([{"class_path": "mask_every_nth"}]).noises[0]) is MaskEveryNth
        with pytest.raises(ValueError, match="'mask_every_nth' is already taken by register"):
            noising.register("mask_every_nth", MaskEveryNth)
        with pytest.raises(ValueError, match="'token_masking' is already taken by built-in"):
            noising.register("token_masking", MaskEveryNth)
    finally:
        noising.registry.unregister("mask_every_nth")


def test_a_class_that_is_not_a_noise_is_a_type_error(outside):
    with pytest.raises(TypeError, match=r"'outside_noises.NotANoise' is .* not a subclass of noising.Noise"):
        build_pipeline([{"class_path": "outside_noises.NotANoise"}])


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (
            {"class_path": "text_infilling", "init_args": {"lamda": 3}},
            ValueError,
            "TextInfilling has no parameter 'lamda'",
        ),
        ({"class_path": "text_infilling", "init_args": {"ratio": 2}}, ValueError, "TextInfilling.ratio=2"),
        ({"class_path": "outside_noises.MaskEveryNth", "init_args": {"n": 0}}, ValueError, "MaskEveryNth.n=0"),
        ({"class_path": "no_such_module.Noise"}, ValueError, "cannot import module 'no_such_module'"),
        ({"class_path": "outside_noises.Nope"}, ValueError, "has no attribute 'Nope'"),
        ({"name": "text_infilling"}, ValueError, "keys must be class_path"),
        ({"class_path": "text_infilling", "init_args": [0.3]}, TypeError, "init_args=[0.3]"),
    ],
)
def test_bad_specs_fail_at_build_time_with_a_clear_message(outside, spec, error, message):
    with pytest.raises(error) as err:
        build_pipeline([{"class_path": "token_masking"}, spec])
    assert message in str(err.value) and "noises[1]" in str(err.value)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        ("OutOfRangeIds", r"outside_noises\.OutOfRangeIds returned ids in \[0, 107\], outside \[0, 100\)"),
        ("DropsEos", r"outside_noises\.DropsEos dropped <s> \(id 0\) first or </s> \(id 2\) last"),
        ("FloatTokens", r"outside_noises\.FloatTokens returned tokens of type float32"),
        ("MutatesInput", r"outside_noises\.MutatesInput modified its input document"),
    ],
)
def test_the_runtime_check_names_a_misbehaving_plug_in(outside, cls, message):
    pipe = build_pipeline([{"class_path": "text_infilling"}, {"class_path": f"outside_noises.{cls}"}])
    before = DOC.tokens.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        pipe(DOC, sample_rng(0, 0, 0), CTX)
    assert np.array_equal(DOC.tokens, before)


def test_a_plug_in_returning_its_input_hands_back_writable_arrays(outside):
    out = build_pipeline([{"class_path": "outside_noises.ReturnsInputViews"}])(DOC, sample_rng(0, 0, 0), CTX)
    assert out.tokens.flags.writeable and out.tokens.tolist() == DOC.tokens.tolist()


def readme_blocks(language: str) -> list[str]:
    guide = README.read_text().split("<!-- plugin-guide:start -->")[1].split("<!-- plugin-guide:end -->")[0]
    return re.findall(rf"```{language}\n(.*?)```", guide, flags=re.DOTALL)


def test_readme_plug_in_guide_runs_as_written(tmp_path, monkeypatch):
    module, check = readme_blocks("python")
    assert module.startswith("# my_noises.py")
    (tmp_path / "my_noises.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    exec(compile(check, "README.md", "exec"), {})  # step 2: the contract test passes

    (recipe,) = readme_blocks("yaml")  # step 3: by import path in a recipe
    pipe = load_noise(yaml.safe_load(recipe))
    doc = Document.from_lists([0, *range(5, 45), 2], sentence_starts=[1, 15, 30])
    out = pipe(doc, sample_rng(0, 0, 0), CTX)
    assert type(pipe.noises[1]).__name__ == "WordShuffle" and out.tokens[0] == 0 and out.tokens[-1] == 2

    (toml,) = readme_blocks("toml")  # step 4: by short name once "installed"
    name, value = re.search(r'^(\w+) = "([\w.:]+)"$', toml, flags=re.MULTILINE).groups()
    fake_dist(tmp_path, "my_noises", f"{name} = {value}")
    shuffled = build_pipeline([{"class_path": name, "init_args": {"ratio": 1.0}}])(doc, sample_rng(0, 0, 0), CTX)
    assert sorted(shuffled.tokens.tolist()) == sorted(doc.tokens.tolist()) != shuffled.tokens.tolist()


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        ("DropsEos", "<s> stays first and </s> last"),
        ("OutOfRangeIds", "ids stay inside the vocabulary"),
        ("MutatesInput", "never modify the input"),
        ("ReturnsList", "return a noising.Document"),
    ],
)
def test_a_contract_violation_is_one_line_naming_the_class_and_the_rule(outside, cls, rule):
    pipe = build_pipeline([{"class_path": f"outside_noises.{cls}"}])
    with pytest.raises(noising.PluginContractError) as err:
        pipe(DOC, sample_rng(0, 0, 0), CTX)
    message = str(err.value)
    assert message.startswith(f"noise plug-in outside_noises.{cls} ") and "; the rule: " in message and rule in message
    assert "\n" not in message


def test_the_start_up_check_refuses_a_plug_in_drawing_from_global_random_state(outside):
    pipe = build_pipeline([{"class_path": "text_infilling"}, {"class_path": "outside_noises.GlobalRandomMask"}])
    message = r"GlobalRandomMask drew from numpy's global generator \(np\.random\.\*\) .*the rule: draw"
    with pytest.raises(noising.PluginContractError, match=message + " randomness only from the rng argument"):
        noising.check_plugins(pipe, CTX)
    noising.check_plugins(build_pipeline([{"class_path": "outside_noises.MaskEveryNth"}]), CTX)  # deterministic: fine
    with pytest.raises(noising.PluginContractError, match="DropsEos dropped"):  # violations show at start-up too
        noising.check_plugins(build_pipeline([{"class_path": "outside_noises.DropsEos"}]), CTX)


def test_a_module_in_the_working_directory_is_importable_by_class_path(tmp_path, monkeypatch):
    (tmp_path / "cwd_noise_mod.py").write_text(
        "from dataclasses import dataclass\nfrom noising import Noise\n\n\n@dataclass(frozen=True)\n"
        "class Keep(Noise):\n    def __call__(self, doc, rng, ctx):\n        return doc\n"
    )
    cwd_entries = {"", ".", str(tmp_path)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in cwd_entries])  # a console script's sys.path
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_noise_mod", raising=False)
    pipe = build_pipeline([{"class_path": "cwd_noise_mod.Keep"}])
    assert type(pipe.noises[0]).__name__ == "Keep" and sys.path[-1] == str(tmp_path)


def test_check_noise_reports_a_plug_in_returning_a_list_as_an_assertion(outside):
    from outside_noises import ReturnsList

    with pytest.raises(AssertionError, match="a list, not a noising.Document"):
        check_noise(ReturnsList())


def test_check_noise_asserts_the_first_content_token_starts_a_word(outside):
    from outside_noises import ClearsFirstWordStart

    with pytest.raises(AssertionError, match="the first content token always starts a word"):
        check_noise(ClearsFirstWordStart())


def test_token_deletion_leaves_what_remains_of_a_word_a_word_of_its_own():
    # Words: [10 11] [12] [13 14 15]; delete tokens 10 and 13 (the first token of two words).
    doc = Document.from_lists([0, 10, 11, 12, 13, 14, 15, 2], word_starts=[0, 1, 0, 1, 1, 0, 0, 0])
    for seed in range(200):
        out = noising.TokenDeletion(ratio=0.3)(doc, sample_rng(seed, 0, 0), CTX)
        if out.tokens.tolist() == [0, 11, 12, 14, 15, 2]:
            break
    assert out.tokens.tolist() == [0, 11, 12, 14, 15, 2]
    assert out.word_starts.astype(int).tolist() == [0, 1, 1, 1, 0, 0]
    check_noise(noising.TokenDeletion(ratio=0.3))
    check_noise(noising.TokenDeletion(ratio=0.9))
