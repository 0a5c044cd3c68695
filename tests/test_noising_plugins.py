"""Plug-ins written outside the repo: by import path, through an installed package's entry point (by class name),
the README's worked example; and the errors (a former short name, two classes of one name, non-noises, bad
init_args, a module that is not importable)."""

from __future__ import annotations

import gc
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from forked import Forked

import noising
from bart_pretrain.data.noise_config import load_noise
from noising import Document, sample_rng
from noising.testing import DEFAULT_CONTEXT as CTX
from noising.testing import check_noise

FIXTURES = Path(__file__).parent / "plugin_fixtures"
SITE = FIXTURES / "site"  # holds tiny_noise_pkg and its .dist-info: "installed" once this is on sys.path
README = Path(__file__).parent.parent / "README.md"
REPO = Path(__file__).parent.parent
DOC = Document.from_lists([0, 10, 11, 12, 13, 14, 15, 2], sentence_starts=[1, 4])


@pytest.fixture
def outside(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.syspath_prepend(str(SITE))


@pytest.fixture(autouse=True)
def forget_imported_modules():
    """Python keeps every imported subclass of Noise (and with it every class name a config can use) for the life of
    the process: the modules a test imports are dropped after it, so that its classes do not outlive it."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        file = Path(getattr(sys.modules[name], "__file__", None) or sys.prefix)
        libraries = (sys.prefix, sys.base_prefix, REPO)
        if file.is_relative_to(FIXTURES) or not any(file.is_relative_to(p) for p in libraries):
            del sys.modules[name]  # a test's own module (under tmp_path or the fixtures), not a library's
    gc.collect()
    assert load_noise(["TextInfilling"]).noises == [noising.TextInfilling()]  # no class of a test left behind


def fake_dist(root: Path, dist: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[bart_pretrain.noising]\n{entry_points}\n")
    for name, source in (modules or {}).items():
        (root / f"{name}.py").write_text(source)


def noise_module(cls: str) -> str:
    return (f"from dataclasses import dataclass\nfrom noising import Noise\n\n\n@dataclass(frozen=True)\n"
            f"class {cls}(Noise):\n    def __call__(self, doc, rng, ctx):\n        return doc\n")  # fmt: skip


def test_a_class_in_an_outside_module_runs_by_import_path(outside):
    pipe = load_noise([{"class_path": "outside_noises.MaskEveryNth", "init_args": {"n": 2}}])
    assert pipe(DOC, sample_rng(0, 0, 0), CTX).tokens.tolist() == [0, 99, 11, 99, 13, 99, 15, 2]
    pipe = load_noise([{"class_path": "outside_noises.MaskEveryNth"}, {"class_path": "SentencePermutation"}])
    assert [type(n).__name__ for n in pipe.noises] == ["MaskEveryNth", "SentencePermutation"]
    assert pipe.trusted == (False, True) and pipe.plugins == ("outside_noises.MaskEveryNth",)
    check_noise(pipe.noises[0])


def test_an_installed_package_exposes_its_noise_by_class_name(installed):
    assert noising.registry.installed() == {"word_dropout": sys.modules["tiny_noise_pkg"].WordDropout}
    pipe = load_noise([{"class_path": "TextInfilling"}, {"class_path": "WordDropout", "init_args": {"p": 0.5}}])
    out = pipe(DOC, sample_rng(1, 0, 0), CTX)
    assert out.tokens[0] == 0 and out.tokens[-1] == 2 and len(out) < len(DOC)
    assert load_noise([{"class_path": "tiny_noise_pkg.WordDropout", "init_args": {"p": 0.5}}]).noises == pipe.noises[1:]
    check_noise(pipe.noises[1])


def test_an_entry_points_name_is_a_former_short_name_naming_the_import_path(installed, tmp_path):
    with pytest.raises(ValueError, match=r"class_path: word_dropout is the former short name of "
                       r"tiny_noise_pkg\.WordDropout: write that instead"):  # fmt: skip
        load_noise([{"class_path": "word_dropout"}])


def test_an_installed_package_works_from_the_command_line_and_a_yaml_recipe(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("noises:\n  - class_path: WordDropout\n    init_args: {p: 0.3}\n")
    argv = ["pretrain", "-c", str(REPO / "configs/pretrain/tiny.yaml"), "--data.noise", str(recipe), "--print_config"]

    def run() -> int:
        sys.path.insert(0, str(SITE))  # installed in this process only
        from bart_pretrain.cli import main

        return main(argv)

    with Forked(run) as child:
        printed, code = child.stdout.read(), child.wait(120)
    assert code == 0, child.stderr()
    noises = yaml.safe_load(printed)["data"]["noise"]["noises"]
    assert noises == [{"class_path": "tiny_noise_pkg.WordDropout", "init_args": {"p": 0.3}}]


def test_unknown_name_lists_every_available_noise(installed):
    with pytest.raises(ValueError) as err:
        load_noise([{"class_path": "TextInfiling"}])
    for name in ["DocumentRotation", "RandomInsertion", "SentencePermutation", "TextInfilling", "WordDropout"]:
        assert name in str(err.value)


def test_two_packages_with_one_class_name_break_only_that_name(tmp_path, monkeypatch):
    fake_dist(tmp_path, "pkg_one", "Shuffle = pkg_one:Shuffle", {"pkg_one": noise_module("Shuffle")})
    fake_dist(tmp_path, "pkg_two", "Shuffle = pkg_two:Shuffle", {"pkg_two": noise_module("Shuffle")})
    monkeypatch.syspath_prepend(str(tmp_path))
    pipe = load_noise([{"class_path": "TextInfilling"}, {"class_path": "TokenMasking"}])  # other names work
    assert [type(n).__name__ for n in pipe.noises] == ["TextInfilling", "TokenMasking"]
    with pytest.raises(ValueError, match=r"Multiple subclasses with name Shuffle. Give the full class path to avoid "
                       r"ambiguity: pkg_one.Shuffle, pkg_two.Shuffle"):  # fmt: skip
        load_noise([{"class_path": "Shuffle"}])
    assert type(load_noise(["pkg_two.Shuffle"]).noises[0]).__module__ == "pkg_two"


def test_a_package_cannot_take_a_built_in_name_from_the_shipped_recipes(tmp_path, monkeypatch):
    fake_dist(tmp_path, "hijack", "TextInfilling = hijack:TextInfilling", {"hijack": noise_module("TextInfilling")})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"Multiple subclasses with name TextInfilling.*hijack.TextInfilling"):
        load_noise([{"class_path": "TextInfilling"}])
    assert load_noise("bart_large").noises[0] == noising.TextInfilling(ratio=0.3)  # shipped: noising.TextInfilling


def test_an_installed_plug_in_that_does_not_import_is_one_warning_and_left_out(tmp_path, monkeypatch):
    fake_dist(tmp_path, "broken", "Broken = broken_mod:Broken\nNotOne = ok_mod:NotOne",
              {"broken_mod": "raise ImportError('needs scipy')\n", "ok_mod": "class NotOne:\n    pass\n"})  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning) as warned:
        assert noising.registry.installed() == {}
    assert [str(w.message) for w in warned] == [
        "noise plug-in entry point Broken = broken_mod:Broken (package broken) cannot be imported (ImportError: needs "
        "scipy); left out",
        "noise plug-in entry point NotOne = ok_mod:NotOne (package broken) is <class 'ok_mod.NotOne'>, not a subclass "
        "of noising.Noise or noising.Objective; left out",
    ]


def test_a_class_that_is_not_a_noise_is_refused(outside):
    with pytest.raises(ValueError, match=r"Import path outside_noises.NotANoise does not correspond to a subclass of "):
        load_noise([{"class_path": "outside_noises.NotANoise"}])


def test_a_plug_ins_own_check_of_its_fields_names_the_file(outside, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("noises:\n  - class_path: outside_noises.MaskEveryNth\n    init_args: {n: 0}\n")
    with pytest.raises(ValueError, match=r"r\.yaml: MaskEveryNth\.n=0: must be an integer >= 1$"):
        load_noise(recipe)


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
    pipe = noising.Pipeline([noising.TextInfilling(), getattr(outside_noises(), cls)()])
    before = DOC.tokens.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        pipe(DOC, sample_rng(0, 0, 0), CTX)
    assert np.array_equal(DOC.tokens, before)


def test_a_plug_in_returning_its_input_hands_back_writable_arrays(outside):
    out = load_noise(["outside_noises.ReturnsInputViews"])(DOC, sample_rng(0, 0, 0), CTX)
    assert out.tokens.flags.writeable and out.tokens.tolist() == DOC.tokens.tolist()


def outside_noises():
    import outside_noises

    return outside_noises


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

    (toml,) = readme_blocks("toml")  # step 4: by class name once "installed"
    name, value = re.search(r'^(\w+) = "([\w.:]+)"$', toml, flags=re.MULTILINE).groups()
    fake_dist(tmp_path, "my_noises", f"{name} = {value}")
    shuffled = load_noise([{"class_path": name, "init_args": {"ratio": 1.0}}])(doc, sample_rng(0, 0, 0), CTX)
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
    pipe = load_noise([f"outside_noises.{cls}"])
    with pytest.raises(noising.PluginContractError) as err:
        pipe(DOC, sample_rng(0, 0, 0), CTX)
    message = str(err.value)
    assert message.startswith(f"noise plug-in outside_noises.{cls} ") and "; the rule: " in message and rule in message
    assert "\n" not in message


def test_the_start_up_check_refuses_a_plug_in_drawing_from_global_random_state(outside):
    pipe = load_noise(["TextInfilling", "outside_noises.GlobalRandomMask"])
    message = r"GlobalRandomMask drew from numpy's global generator \(np\.random\.\*\) .*the rule: draw"
    with pytest.raises(noising.PluginContractError, match=message + " randomness only from the rng argument"):
        noising.check_plugins(pipe, CTX)
    noising.check_plugins(load_noise(["outside_noises.MaskEveryNth"]), CTX)  # deterministic: fine
    with pytest.raises(noising.PluginContractError, match="DropsEos dropped"):  # violations show at start-up too
        noising.check_plugins(load_noise(["outside_noises.DropsEos"]), CTX)


def test_a_module_not_on_the_path_is_one_line_saying_how_to_import_it(tmp_path, monkeypatch):
    (tmp_path / "cwd_noise_mod.py").write_text(noise_module("Keep"))
    cwd_entries = {"", ".", str(tmp_path)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in cwd_entries])  # a console script's sys.path
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_noise_mod", raising=False)
    path = list(sys.path)
    with pytest.raises(ValueError, match=r"No module named 'cwd_noise_mod'; a module of your own must be importable: "
                       r"put its directory on PYTHONPATH"):  # fmt: skip
        load_noise(["cwd_noise_mod.Keep"])
    assert sys.path == path  # the search path is the user's: never edited
    monkeypatch.syspath_prepend(str(tmp_path))  # PYTHONPATH=.
    assert type(load_noise(["cwd_noise_mod.Keep"]).noises[0]).__name__ == "Keep"


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
