"""Tests marked `gpu` (declared in pyproject.toml) skip on a machine without CUDA; torch is imported only when such a
test was collected, so numpy-only test runs stay torch-free."""

import pytest


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
