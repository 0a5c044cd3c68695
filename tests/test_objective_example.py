"""The README's plug-in objective (examples/my_objectives.py, middle infilling): the README shows the file as it is,
it passes the contract, its pairs give back the document, and a recipe using it (after a noise) previews and
pretrains from the examples directory (on PYTHONPATH), checked as a plug-in."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from pretrain_world import make_world

import noising
from noising.testing import OBJECTIVE_CONTEXT, check_objective

REPO = Path(__file__).parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("my_objectives")  # examples/, not an installed distribution


def test_readme_shows_the_example_file_as_it_is():
    guide = (REPO / "README.md").read_text().split("<!-- objective-guide:start -->")[1]
    shown = guide.split("```python\n")[1].split("```")[0]
    code = (EXAMPLES / "my_objectives.py").read_text()
    assert shown == code[code.index("from __future__") :]
    check = guide.split("```python\n")[2].split("```")[0]
    assert "check_objective(MiddleInfilling(ratio=0.3))" in check


def test_the_example_keeps_the_contract_and_its_pair_gives_back_the_document(example):
    check_objective(example.MiddleInfilling(ratio=0.3))
    check_objective(example.MiddleInfilling(ratio=1.0))
    check_objective(example.MiddleInfilling(ratio=0.0))
    doc = noising.Document.from_lists([0, *range(10, 30), 2])
    for i in range(50):
        ex = example.MiddleInfilling()(doc, noising.sample_rng(0, 0, i), OBJECTIVE_CONTEXT)
        assert len(ex.target) == 2 + 6  # round(0.3 * 20)
        at = int(np.flatnonzero(ex.source == OBJECTIVE_CONTEXT.mask_id)[0])
        filled = np.concatenate((ex.source[:at], ex.target[1:-1], ex.source[at + 1 :]))
        assert np.array_equal(filled, doc.tokens)
    with pytest.raises(ValueError, match=r"MiddleInfilling.ratio=1.5: must be a number in \[0, 1\]"):
        example.MiddleInfilling(ratio=1.5)


def test_the_example_recipe_previews_and_pretrains_from_the_examples_directory(tmp_path, monkeypatch, capsys):
    from bart_pretrain.cli import main as cli_main
    from bart_pretrain.data.noise_config import load_noise

    config = make_world(tmp_path / "world", n_train=24, n_val=4, trainer__max_steps=2, trainer__val_check_interval=2)
    monkeypatch.chdir(EXAMPLES)  # as the README runs it: `cd examples; export PYTHONPATH=.`
    monkeypatch.syspath_prepend(str(EXAMPLES))
    pipe = load_noise("middle_infilling.yaml")
    assert pipe.plugins == ("my_objectives.MiddleInfilling",) and type(pipe.noises[0]) is noising.SentencePermutation
    text = "One sentence here. And another one."
    argv = ["noise-preview", "--noise", "middle_infilling.yaml", "--text", text, "--color", "never",
            "--tokenizer_path", str(tmp_path / "world" / "tokenizer.json")]  # fmt: skip
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "MiddleInfilling(ratio=0.3)" in out and "[[<mask>]]" in out and "  target: <s>" in out
    run = ["pretrain", "-c", str(config), "--data.noise", "middle_infilling.yaml", "--torch_threads", "1",
           "--run_dir", str(tmp_path / "run")]  # fmt: skip
    assert cli_main(run) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "- target:    " in (tmp_path / "run" / "report.md").read_text()
