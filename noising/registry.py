"""Which noises (and objectives) exist. A config names a noise by its import path (``noising.TextInfilling``,
``my_pkg.WordShuffle``), or by its class name once its module is imported; there is no table of names beside
Python's imports. Here: :data:`BUILTINS`, the one list of built-in noises and objectives, and :func:`installed`, which
imports the noises that installed packages declare under the entry-point group ``bart_pretrain.noising``, so that
their class names work too.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

from noising.base import Noise, Objective
from noising.document_rotation import DocumentRotation
from noising.gap_sentences import GapSentences
from noising.prefix_lm import PrefixLM
from noising.random_insertion import RandomInsertion
from noising.sentence_permutation import SentencePermutation
from noising.t5_spans import T5SpanCorruption
from noising.text_infilling import TextInfilling
from noising.token_deletion import TokenDeletion
from noising.token_masking import TokenMasking
from noising.ul2 import UL2Mixture

BUILTINS: tuple[type[Noise] | type[Objective], ...] = (
    TokenMasking,
    TokenDeletion,
    TextInfilling,
    SentencePermutation,
    DocumentRotation,
    RandomInsertion,
    T5SpanCorruption,
    GapSentences,
    UL2Mixture,
    PrefixLM,
)
"""The built-in noises and objectives: trusted by :class:`noising.Pipeline` (their contract tests, which must cover
exactly this tuple, prove them), every other one is checked on each call. A new built-in is its module plus one
entry here."""

ENTRY_POINT_GROUP = "bart_pretrain.noising"


def installed() -> dict[str, type[Noise] | type[Objective]]:
    """Import the noises (and objectives) installed packages declare (``[project.entry-points."bart_pretrain.noising"]
    WordShuffle = "my_pkg.noise:WordShuffle"``): entry-point name -> class. A config can then name each by its class
    name, as it names a built-in. One that cannot be imported, or is neither a noise nor an objective, is reported in
    one warning line and left out (a package that is not used breaks no run); two classes of one name are an error
    only where that name is used (the parser lists both import paths)."""
    found: dict[str, type[Noise] | type[Objective]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", None) or "an unknown distribution"
        where = f"noise plug-in entry point {ep.name} = {ep.value} (package {dist})"
        try:
            cls = ep.load()
        except Exception as e:  # any failure of a third-party import: reported, and that one noise is missing
            warnings.warn(f"{where} cannot be imported ({type(e).__name__}: {e}); left out", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, (Noise, Objective))):
            what = "not a subclass of noising.Noise or noising.Objective"
            warnings.warn(f"{where} is {cls!r}, {what}; left out", stacklevel=2)
            continue
        found[ep.name] = cls
    return found
