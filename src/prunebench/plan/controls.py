"""Controls a sweep adds beside each method: registered objects that own their rules.

A sweep chooses them with a top-level ``controls:`` list (default ``[random]``):

- ``random``: random pruning at the same target, by the random strategy of the run's structure,
  with global scope (random scores are i.i.d., so a layer-scope copy would measure the same).
- ``layer-shuffle`` (Frankle et al. 2021): the method's own mask, permuted uniformly at random
  within each tensor (``prune.shuffle: true``): the method's per-layer densities, random weights
  chosen. Unstructured one-shot or at-init runs only.
- ``reinit``: the method's mask on a fresh random initialization (``retrain.mode: reinit``,
  trained with the ``train`` recipe). Runs retrained with ``finetune`` only.

Each control says which runs it applies to, derives its spec from the method's, and tells the
report which method curve it belongs to (the settings it changed, put back).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from prunebench.spec import SHUFFLE_SCHEDULES, ExperimentSpec, format_validation_error
from prunebench.errors import ConfigError
from prunebench.registry import Registry

# The structures (and torch with them) are imported by the methods that derive control runs: the
# report reads only the registry and ``control_of`` (``prunebench results`` must not load torch).

CONTROLS_KEY = "controls"
DEFAULT_CONTROLS = ("random",)


class Control:
    """A control of a method run. ``marks`` are the flat spec keys and JSON values that tell its
    runs apart from the method's (empty: paired by what a comparison holds equal instead)."""

    name: str = ""
    description: str = ""
    marks: Mapping[str, str] = {}
    source_values: Mapping[str, str] = {}  # the marked keys' values in the method's own spec

    def applies(self, spec: ExperimentSpec) -> bool:
        from prunebench.pruning.structures import random_controls

        return spec.prune.strategy not in random_controls()

    def changes(self, spec: ExperimentSpec) -> dict[str, Any]:
        """Dotted spec keys -> values that turn the method's spec into the control's."""
        raise NotImplementedError

    def derive(self, spec: ExperimentSpec) -> ExperimentSpec:
        """The control's spec, validated like any config."""
        data = spec.model_dump(mode="json", exclude_defaults=True)
        for dotted, value in self.changes(spec).items():
            *sections, key = dotted.split(".")
            node = data
            for section in sections:
                node = node.setdefault(section, {})
            if value is None:
                node.pop(key, None)
            else:
                node[key] = value
        try:
            return ExperimentSpec.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"controls: the {self.name} control of this sweep is invalid: {format_validation_error(exc)}") from None

    def recognizes(self, settings: Mapping[str, str]) -> bool:
        """Whether a control run's flat settings are this control's."""
        return bool(self.marks) and all(settings.get(k) == v for k, v in self.marks.items())

    def source(self, settings: Mapping[str, str]) -> dict[str, str]:
        """The flat settings of the method run this control was derived from."""
        return {**settings, **self.source_values}


class RandomControl(Control):
    name = "random"
    description = "random pruning at the same target (the structure's random strategy, global scope)"

    def applies(self, spec: ExperimentSpec) -> bool:
        return True  # a random run's own control is itself: derived, it is found among the methods

    def changes(self, spec: ExperimentSpec) -> dict[str, Any]:
        from prunebench.pruning.structures import random_control

        return {"prune.strategy": random_control(spec.prune.structure), "prune.scope": "global", "prune.options": None}


class LayerShuffle(Control):
    name = "layer-shuffle"
    description = "the method's mask permuted at random within each tensor (per-layer densities kept)"
    marks = {"prune.shuffle": json.dumps(True)}
    source_values = {"prune.shuffle": json.dumps(False)}

    def applies(self, spec: ExperimentSpec) -> bool:
        from prunebench.pruning.structures import UNSTRUCTURED

        return (super().applies(spec) and spec.prune.structure == UNSTRUCTURED
                and spec.prune.schedule in SHUFFLE_SCHEDULES and not spec.prune.shuffle)

    def changes(self, spec: ExperimentSpec) -> dict[str, Any]:
        return {"prune.shuffle": True}


class Reinit(Control):
    name = "reinit"
    description = "the method's mask on a fresh random initialization, trained with the train recipe"
    marks = {"retrain.mode": json.dumps("reinit")}
    source_values = {"retrain.mode": json.dumps("finetune")}

    def applies(self, spec: ExperimentSpec) -> bool:
        return super().applies(spec) and spec.retrain.mode == "finetune" and spec.prune.schedule != "gradual"

    def changes(self, spec: ExperimentSpec) -> dict[str, Any]:
        return {"retrain.mode": "reinit"}


CONTROLS: Registry[Control] = Registry("control")
for _control in (RandomControl(), LayerShuffle(), Reinit()):
    CONTROLS.add(_control.name, _control)


def parse_controls(value: Any) -> tuple[Control, ...]:
    """The ``controls:`` list of a config, each name checked."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"controls: must be a list of control names, from {', '.join(CONTROLS.names())} (got {value!r})")
    repeated = [v for i, v in enumerate(value) if v in value[:i]]
    if repeated:
        raise ConfigError(f"controls: {repeated[0]!r} appears more than once")
    unknown = [v for v in value if v not in CONTROLS]
    if unknown:
        raise ConfigError(f"controls: {CONTROLS.unknown_message(unknown[0])}")
    return tuple(CONTROLS.get(v) for v in value)


def control_of(settings: Mapping[str, str]) -> str:
    """Which control a control run is, from its flat settings (random unless another one marks it)."""
    for name in CONTROLS:
        control = CONTROLS.get(name)
        if control.recognizes(settings):
            return name
    return RandomControl.name


def controls_for(specs: Sequence[ExperimentSpec], controls: Sequence[Control]) -> list[ExperimentSpec]:
    """Every control run of ``specs``, in order, without repeats."""
    derived: dict[str, ExperimentSpec] = {}
    for spec in specs:
        for control in controls:
            if control.applies(spec):
                extra = control.derive(spec)
                derived.setdefault(extra.run_id, extra)
    return list(derived.values())
