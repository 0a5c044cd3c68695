"""The process-wide random generators a plug-in noise must not draw from: Python's ``random`` and numpy's legacy
global generator (``np.random.random`` ...). (Torch's global generator is watched by the data layer, around each
batch: reading its state costs microseconds, and this package never imports torch.)

:func:`global_random_state` reads their states in place, a few machine words, so ``pipeline.checked_call`` compares
them before and after every plug-in call: any draw changes a state, however rarely the plug-in draws.
"""

from __future__ import annotations

import ctypes
import random
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

GENERATORS = ("Python's global `random`", "numpy's global generator (np.random.*)")
"""What each entry of :func:`global_random_state` reads, as an error message names it."""


def _python_reader() -> Callable[[], Any]:
    """The global ``random`` generator's position and first state word, read in place (CPython keeps them after the
    object header: ``int index; uint32_t state[624]``), and its cached Gaussian; any draw moves the position (a draw
    of exactly 624 words regenerates the state instead). Checked against ``random.getstate()`` once; where the
    layout differs, the whole ``getstate()``."""
    generator = random.random.__self__  # the instance behind random.random, random.randint, ... (also when imported)
    version, internal, _ = generator.getstate()
    address = id(generator) + object.__basicsize__
    index, first = struct.unpack("iI", ctypes.string_at(address, 8))
    if version == 3 and len(internal) == 625 and (index, first) == (internal[624], internal[0]):
        cell = ctypes.c_uint64.from_address(address)
        return lambda: (cell.value, generator.gauss_next)
    return generator.getstate


class _NumpyReader:
    """The legacy global generator's bit generator (``np.random.get_bit_generator()``; ``np.random.set_bit_generator``
    may replace it): for MT19937 its position and first key word, read in place from ``ctypes.state_address``
    (``uint32_t key[624]; int pos``), checked against ``.state`` once per bit generator; for another, its ``.state``."""

    def __init__(self):
        self.bit_generator: Any = None
        self.read: Callable[[], Any] = lambda: None

    def __call__(self) -> Any:
        bit_generator = np.random.get_bit_generator()
        if bit_generator is not self.bit_generator:
            self.bit_generator, self.read = bit_generator, self._reader(bit_generator)
        return self.read()

    @staticmethod
    def _reader(bit_generator: Any) -> Callable[[], Any]:
        state = bit_generator.state
        if state.get("bit_generator") == "MT19937":
            address = bit_generator.ctypes.state_address
            key, pos = ctypes.c_uint32.from_address(address), ctypes.c_int.from_address(address + 4 * 624)
            if (key.value, pos.value) == (int(state["state"]["key"][0]), int(state["state"]["pos"])):
                return lambda: (key.value, pos.value)
        return lambda: repr(bit_generator.state)


_read_python = _python_reader()
_read_numpy = _NumpyReader()


def global_random_state() -> tuple:
    """A fingerprint of the global generators' states: equal before and after a call unless the call drew from one
    of them (or seeded it). Well under a microsecond."""
    return _read_python(), _read_numpy()


def changed(before: tuple, after: tuple) -> list[str]:
    """The generators (named as in :data:`GENERATORS`) whose state differs between two fingerprints."""
    return [name for name, a, b in zip(GENERATORS, before, after, strict=True) if a != b]
