"""BART's document corruptions as small, typed, reproducible functions (numpy only).

See ``noising.base`` for the contract. This module is filled in by the noising package work (issue 3).
"""

from noising.base import Document, Noise, NoiseContext, sample_rng

__all__ = ["Document", "Noise", "NoiseContext", "sample_rng"]
