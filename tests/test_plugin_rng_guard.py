"""A plug-in noise drawing from a global random generator (Python's `random`, numpy's legacy `np.random.*`, torch's)
fails on the very call that draws, however rarely it draws, with one line naming the plug-in and the generator; in
pretraining too, with 0 or 1 data-loader workers. A generator of its own (OS entropy) is caught at start-up."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from pretrain_world import make_world

import noising
from bart_pretrain.cli import main as cli_main
from bart_pretrain.data.noise_config import load_noise
from noising import Document, sample_rng
from noising.testing import DEFAULT_CONTEXT as CTX

FIXTURES = Path(__file__).parent / "plugin_fixtures"
DOC = Document.from_lists([0, *range(10, 30), 2], sentence_starts=[1, 8, 15])
RULE = "; the rule: draw randomness only from the rng argument"


@pytest.fixture
def outside(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def plugin(cls: str) -> noising.Pipeline:
    return load_noise(["TextInfilling", f"outside_noises.{cls}"])


@pytest.mark.parametrize(
    ("cls", "generator"),
    [
        ("GlobalRandomMask", r"numpy's global generator \(np\.random\.\*\)"),
        ("ReseedsNumpy", r"numpy's global generator \(np\.random\.\*\)"),
        ("ImportedGlobalRandom", "Python's global `random`"),
        ("GlobalGauss", "Python's global `random`"),
    ],
)
def test_a_draw_from_a_global_generator_fails_on_that_call_naming_plug_in_and_generator(outside, cls, generator):
    with pytest.raises(noising.PluginContractError) as err:
        plugin(cls)(DOC, sample_rng(0, 0, 0), CTX)
    message = str(err.value)
    assert re.fullmatch(rf"noise plug-in outside_noises\.{cls} drew from {generator} \(its state changed during the "
                        rf"call\){RULE} \(no global numpy\.random, random, torch or time\), so that a sample is a pure "
                        r"function of \(seed, epoch, index\)", message)  # fmt: skip


def test_taking_the_cached_second_gaussian_of_random_gauss_is_a_draw_too(outside):
    random.gauss(0.0, 1.0)  # leaves the second value of the pair cached: the next gauss() moves no twister word
    with pytest.raises(noising.PluginContractError, match="GlobalGauss drew from Python's global `random`"):
        plugin("GlobalGauss")(DOC, sample_rng(0, 0, 0), CTX)


def test_a_plug_in_drawing_on_one_call_in_ten_fails_on_the_first_such_call(outside):
    pipe = load_noise(["outside_noises.RarelyGlobalRandom"])
    draws = [i for i in range(200) if sample_rng(0, 0, i).random() < 0.1]  # where the plug-in draws (its rng decides)
    quiet = [s for s in range(50) if sample_rng(s, 0, 0).random() >= 0.1][:4]
    noising.check_plugins(pipe, CTX, seeds=quiet)  # the start-up check alone sees nothing at these seeds
    for i in range(draws[0]):
        pipe(DOC, sample_rng(0, 0, i), CTX)  # the calls that do not draw pass
    with pytest.raises(noising.PluginContractError, match=r"RarelyGlobalRandom drew from Python's global `random`"):
        pipe(DOC, sample_rng(0, 0, draws[0]), CTX)


def test_a_generator_of_its_own_is_caught_at_start_up_by_its_differing_outputs(outside):
    pipe = load_noise(["outside_noises.OwnEntropy"])
    pipe(DOC, sample_rng(0, 0, 0), CTX)  # no global state changes: the call itself passes
    with pytest.raises(noising.PluginContractError, match=r"OwnEntropy gave two different outputs \(tokens\)"):
        noising.check_plugins(pipe, CTX)


def test_plug_ins_drawing_only_from_their_rng_pass_and_other_code_may_draw_between_calls(outside):
    pipe = load_noise(["outside_noises.RarelyGlobalRandom", "TokenMasking"])
    seeds = [s for s in range(400) if sample_rng(s, 0, 0).random() >= 0.1][:100]
    for seed in seeds:
        random.random()  # the training loop, a logger ...: not the plug-in
        np.random.random()  # noqa: NPY002
        pipe(DOC, sample_rng(seed, 0, 0), CTX)
    noising.check_plugins(load_noise(["outside_noises.MaskEveryNth"]), CTX)


def test_a_draw_from_torchs_generator_fails_the_batch_naming_the_plug_in(outside):
    import torch

    from bart_pretrain.data.batching import BatchKey
    from bart_pretrain.data.pretrain_dataset import Corruptor, DenoisingDataset

    pipe = load_noise(["outside_noises.TorchOnLongDocuments"])
    corruptor = Corruptor(pipe, CTX)  # the start-up probe (3 sentences) sees nothing
    short = {
        "input_ids": [0, 10, 11, 12, 13, 14, 2],
        "word_starts": [0, 1, 1, 1, 1, 1, 0],
        "sentence_starts": [1, 2, 3],
    }
    long = {**short, "sentence_starts": [1, 2, 3, 4]}
    dataset = DenoisingDataset([short, short, long], corruptor, seed=0)
    state = torch.default_generator.get_state()
    dataset[BatchKey(epoch=0, position=0, indices=(0, 1))]  # no draw: fine
    torch.rand(3)  # other code (the training step) may draw between batches
    with pytest.raises(noising.PluginContractError) as err:
        dataset[BatchKey(epoch=0, position=1, indices=(1, 2))]
    assert str(err.value) == (
        "noise plug-in outside_noises.TorchOnLongDocuments drew from torch's global generator (its state changed while "
        f"a batch was corrupted){RULE} (no global numpy.random, random, torch or time), so that a sample is a pure "
        "function of (seed, epoch, index)"
    )
    torch.default_generator.set_state(state)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_world(root, trainer__max_steps=4)
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_pretraining_with_a_rarely_drawing_plug_in_stops_with_one_line(world, tmp_path, outside, capsys, workers):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("noises:\n  - class_path: TextInfilling\n  - class_path: outside_noises.RarelyGlobalRandom\n")
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(tmp_path / "run")]
    assert cli_main([*args, "--data.noise", str(recipe), "--data.num_workers", str(workers)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "bart-pretrain pretrain: error: noise plug-in outside_noises.RarelyGlobalRandom drew from Python's global "
        "`random` (its state changed during the call); the rule: draw randomness only from the rng argument"
    )
    assert not any("Traceback" in line for line in err)
    assert not list((tmp_path / "run").glob("checkpoints/*.ckpt"))
