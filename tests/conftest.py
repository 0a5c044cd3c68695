"""Hooks only (the tests' factories are in pretrain_world.py): tests marked `gpu` (declared in pyproject.toml) skip on
a machine without CUDA, and torch is imported only when such a test was collected, so numpy-only test runs stay
torch-free; one torch thread per pytest-xdist worker; jsonargparse's docstring parsing cached for the run."""

import os

import pytest

# Under pytest-xdist each worker is one process per core: one torch thread each (and in the processes they start),
# or the workers' thread pools fight over the cores and every training test slows down several times.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def _cache_attribute_docstrings() -> None:
    """Every LightningCLI that a test builds has jsonargparse read the attribute docstrings of the Trainer, the modules
    and the configs from their source files (``docstring_parser.parse_from_object``): 0.7 s per CLI, dozens of CLIs
    per worker. The source does not change during a run, so one parse per object is kept."""
    import functools

    try:
        import docstring_parser
    except ImportError:
        return
    docstring_parser.parse_from_object = functools.cache(docstring_parser.parse_from_object)


_cache_attribute_docstrings()


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in gpu:
        item.add_marker(skip)


@pytest.fixture
def training_steps(monkeypatch) -> list[int]:
    """The batch indices of the training steps run in this process (a spy on ``Seq2SeqModule.training_step``): a
    mistake or fault seen before training must leave it empty."""
    from bart_pretrain.training.module import Seq2SeqModule

    calls: list[int] = []
    real = Seq2SeqModule.training_step

    def spy(self, batch, batch_idx):
        calls.append(batch_idx)
        return real(self, batch, batch_idx)

    monkeypatch.setattr(Seq2SeqModule, "training_step", spy)
    return calls
