"""A noise curriculum: the recipe starts lighter and reaches full strength after ``steps`` optimizer steps.

A model trained from scratch first has to learn to read its source at all; a light corruption gives it mostly
copyable text to learn that from, then the real objective takes over. The strength at step t is
``start + (1 - start) * min(t / steps, 1)`` (linear ramp), and it acts in one of two ways:

- ``"ratio"``: every noise's amount field (``ratio``, or ``probability`` for rotation) is multiplied by the strength;
- ``"mix"``: each sample is corrupted by the full recipe with probability = strength, else left as it is (works
  for any plug-in, whatever its fields). For a recipe ending in an objective, a sample left as it is is the identity
  pair (document, document): what a from-scratch model learns to copy from. ``"ratio"`` is refused for such a
  recipe: a lighter objective still has its own target, not copyable text.

The strength is a pure function of the step, and the step of a sample is a function of its batch's position, so a
scheduled run is as reproducible (workers, ranks, resume) as an unscheduled one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from noising.base import Document, Example, Noise, NoiseContext, check_choice, check_fraction
from noising.pipeline import Pipeline

AMOUNT_FIELDS = ("ratio", "probability")


def amount_field(noise: Noise) -> str | None:
    """The field of ``noise`` that says how much it corrupts (None: it has none the schedule can scale)."""
    names = {f.name for f in dataclasses.fields(noise)} if dataclasses.is_dataclass(noise) else set()
    return next((name for name in AMOUNT_FIELDS if name in names), None)


@dataclass(frozen=True)
class NoiseSchedule:
    """Linear ramp of the noise strength from ``start`` to 1 over ``steps`` optimizer steps
    (``--data.noise_schedule.*``)."""

    steps: int = 0
    """Optimizer steps until full strength; 0: no schedule (full strength from the first step)."""
    start: float = 0.0
    """Strength at step 0, in [0, 1]."""
    mode: Literal["ratio", "mix"] = "ratio"
    """How strength acts: scale every noise's ratio, or corrupt that share of the samples with the full recipe."""

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"NoiseSchedule.steps={self.steps!r}: must be an integer >= 0 (0: no schedule)")
        check_fraction(self, "start", self.start)
        check_choice(self, "mode", self.mode, {"ratio", "mix"})

    def strength(self, step: float) -> float:
        """Strength in [start, 1] after ``step`` optimizer steps."""
        if self.steps == 0:
            return 1.0
        return self.start + (1.0 - self.start) * min(max(step, 0.0) / self.steps, 1.0)

    def check(self, pipeline: Pipeline) -> None:
        """Raise ``ValueError`` at start-up if ``mode="ratio"`` meets a noise without an amount field."""
        if self.mode != "ratio" or self.steps == 0:
            return
        if pipeline.objective is not None:
            raise ValueError(
                f"noise_schedule.mode='ratio': the recipe ends with the objective {type(pipeline.objective).__name__}, "
                "whose target is not the document, so a lighter one gives no copyable samples; use mode 'mix' (a "
                "share of the samples are the pair (document, document))"
            )
        for i, noise in enumerate(pipeline.noises):
            if amount_field(noise) is None:
                raise ValueError(
                    f"noise_schedule.mode='ratio': noises[{i}] ({type(noise).__name__}) has no field "
                    f"{' or '.join(AMOUNT_FIELDS)} to scale; use mode 'mix' (corrupts a share of the samples)"
                )


class ScheduledPipeline:
    """A pipeline under a schedule: ``(doc, rng, ctx, step) -> Document``; pipelines of scaled noises are cached
    per strength, which is rounded to 1/1000 (the ramp moves in at most 1000 distinct steps)."""

    def __init__(self, pipeline: Pipeline, schedule: NoiseSchedule):
        schedule.check(pipeline)
        self.pipeline, self.schedule = pipeline, schedule
        self._scaled: dict[int, Pipeline] = {1000: pipeline}

    def at(self, strength: float) -> Pipeline:
        key = round(strength * 1000)
        if key not in self._scaled:
            s = key / 1000
            noises = []
            for noise in self.pipeline.noises:
                name = amount_field(noise)
                noises.append(dataclasses.replace(noise, **{name: getattr(noise, name) * s}))
            self._scaled[key] = Pipeline(noises)
        return self._scaled[key]

    def example(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext, step: float) -> Example:
        """(source, target) at ``step``: :meth:`Pipeline.example` of the scheduled recipe; in ``mix`` mode a sample
        left as it is is (document, document). Without an objective, the same draws and tokens as ``__call__``."""
        strength = self.schedule.strength(step)
        if strength >= 1.0:
            return self.pipeline.example(doc, rng, ctx)
        if self.schedule.mode == "mix":
            return self.pipeline.example(doc, rng, ctx) if rng.random() < strength else Example(doc.tokens, doc.tokens)
        return self.at(strength).example(doc, rng, ctx)

    def __call__(self, doc: Document, rng: np.random.Generator, ctx: NoiseContext, step: float) -> Document:
        strength = self.schedule.strength(step)
        if strength >= 1.0:
            return self.pipeline(doc, rng, ctx)
        if self.schedule.mode == "mix":
            return self.pipeline(doc, rng, ctx) if rng.random() < strength else doc
        return self.at(strength)(doc, rng, ctx)
