"""The pruning schedules the spec accepts, and the rules each owns.

This is what ``prune.schedule: one-shot`` means to the schema: the ``prune.*`` section it reads,
whether it refines a mask over steps, which of its settings contradict each other and which
``retrain.*`` keys a retraining mode reads under it. How a schedule runs (prunes, trains) is in
:mod:`prunebench.experiment.schedules`, whose classes extend these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from prunebench.catalog.retrain_modes import RetrainRules
from prunebench.registry import Registry


class IterativeSettings(Protocol):
    """What the rules read of ``prune.iterative``."""

    @property
    def rounds(self) -> int | None: ...

    @property
    def layer_rates(self) -> Mapping[str, float]: ...


class GradualSettings(Protocol):
    """What the rules read of ``prune.gradual``."""

    @property
    def start_step(self) -> int: ...

    @property
    def end_step(self) -> int | None: ...

    @property
    def frequency(self) -> int: ...


class PruneSettings(Protocol):
    """What the rules read of the ``prune`` section (:class:`prunebench.spec.PruneSpec` is one)."""

    @property
    def scope(self) -> str: ...

    @property
    def compression(self) -> float | None: ...

    @property
    def iterative(self) -> IterativeSettings: ...

    @property
    def gradual(self) -> GradualSettings: ...


class ScheduleRules:
    """A pruning schedule as the schema knows it. ``section`` names its ``prune.*`` settings
    (None: it has none); ``refines_masks`` says whether a later step prunes further a mask an
    earlier step chose."""

    name: str = ""
    description: str = ""
    section: str | None = None
    refines_masks: bool = False

    def validate(self, prune: PruneSettings) -> None:
        """Raise ValueError, naming the keys, for settings that contradict each other."""

    def retrain_settings(self, mode: RetrainRules) -> tuple[str, ...]:
        """The ``retrain.*`` keys ``mode`` reads under this schedule."""
        return mode.settings


class OneShotRules(ScheduleRules):
    name = "one-shot"
    description = "prune the dense checkpoint once to the target, then retrain"


class IterativeRules(ScheduleRules):
    name = "iterative"
    description = "rounds of prune -> retrain, each removing prune.iterative.rate of what remains"
    section = "iterative"
    refines_masks = True

    def validate(self, prune: PruneSettings) -> None:
        it = prune.iterative
        if it.rounds is not None and prune.compression is not None:
            raise ValueError("prune.iterative.rounds and prune.compression both set the target: give one")
        if it.layer_rates and it.rounds is None:
            raise ValueError("prune.iterative.layer_rates needs prune.iterative.rounds (the target is then the rounds)")
        if it.layer_rates and prune.scope != "layer":
            raise ValueError("prune.iterative.layer_rates needs prune.scope 'layer'")

    def retrain_settings(self, mode: RetrainRules) -> tuple[str, ...]:
        """The mode's own settings and those its intermediate rounds read (e.g. reinit's rewind_step)."""
        return (*mode.settings, *mode.round_settings)


class GradualRules(ScheduleRules):
    name = "gradual"
    description = "Zhu & Gupta's cubic sparsity ramp during fine-tuning, masks updated every prune.gradual.frequency steps"
    section = "gradual"
    refines_masks = True

    def validate(self, prune: PruneSettings) -> None:
        g = prune.gradual
        if g.end_step is not None and g.end_step - g.start_step < g.frequency:
            raise ValueError("prune.gradual.end_step - prune.gradual.start_step must be at least prune.gradual.frequency")


class AtInitRules(ScheduleRules):
    name = "at-init"
    description = "prune the network's initialization once, then train it with the train recipe"


SCHEDULES: Registry[ScheduleRules] = Registry("schedule")
for _rules in (OneShotRules(), IterativeRules(), GradualRules(), AtInitRules()):
    SCHEDULES.add(_rules.name, _rules)
