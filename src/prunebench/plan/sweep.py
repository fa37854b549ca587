"""Sweeps: a ``sweep:`` section of dotted keys -> lists expands to the product of its values.

Baselines belong in every comparison: unless ``baselines: false``, a sweep gains the controls
named by ``controls:`` (default ``[random]``: random pruning at every listed target, with the
random strategy of the run's structure, global scope) for every run, and one dense row per
dense checkpoint. The controls are registered objects (:mod:`prunebench.plan.controls`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prunebench.spec import (
    SETTINGS_KEYS,
    ExperimentSpec,
    RunSettings,
    build_specs,
    deep_copy,
    read_config,
    set_dotted,
)
from prunebench.errors import ConfigError
from prunebench.plan.controls import CONTROLS, CONTROLS_KEY, DEFAULT_CONTROLS, controls_for, parse_controls

SWEEP_KEY = "sweep"
BASELINES_KEY = "baselines"
DENSE_PREFIX = "dense-"


@dataclass(frozen=True)
class Job:
    """One unit of work. A dense job trains (or loads) ``spec``'s dense checkpoint only."""

    kind: Literal["dense", "pruned"]
    spec: ExperimentSpec
    role: Literal["method", "control"] = "method"  # control: a baseline the sweep added

    @property
    def run_id(self) -> str:
        return DENSE_PREFIX + self.spec.dense_spec().content_hash() if self.kind == "dense" else self.spec.run_id

    def describe(self) -> str:
        s = self.spec
        if self.kind == "dense":
            return f"{s.dataset}/{s.model} dense seed {s.seed}"
        target = s.target.label()  # '8x', 'speedup 2x', '2:4', ...
        variant = (" layer-shuffle" if s.prune.shuffle else "") + (f" {s.retrain.mode}" if s.retrain.mode != "finetune" else "")
        return f"{s.dataset}/{s.model} {s.prune.strategy}/{s.prune.scope}{variant} {target} seed {s.seed}"


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    settings: RunSettings
    is_sweep: bool

    @property
    def dense_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "dense"]

    @property
    def pruned_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "pruned"]


def expand_grid(grid: Any) -> list[dict[str, Any]]:
    """``{"a.b": [1, 2], "c": [3]}`` -> ``[{"a.b": 1, "c": 3}, {"a.b": 2, "c": 3}]``.

    A list of such mappings is the union of their products, in order: points that no single
    product holds (sparsities and N:M patterns, which exclude each other) in one comparison."""
    if isinstance(grid, list) and grid and all(isinstance(part, Mapping) for part in grid):
        points: list[dict[str, Any]] = []
        for index, part in enumerate(grid):
            try:
                points += expand_grid(part)
            except ConfigError as exc:  # 'sweep.key: ...' -> 'sweep[1].key: ...'
                raise ConfigError(f"sweep[{index}]{str(exc).removeprefix('sweep')}") from None
        return points
    if not isinstance(grid, Mapping):
        raise ConfigError("sweep: must map dotted keys to lists of values, or be a list of such mappings")
    for key, values in grid.items():
        if str(key).split(".")[0] in SETTINGS_KEYS:
            raise ConfigError(
                f"sweep.{key}: {key} is a run setting; settings do not change results (they are not in the run id), "
                "so they cannot be swept: set it once, outside sweep"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{key}: must be a non-empty list of values")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:  # a repeated value is the same run again: it would silently count once
            raise ConfigError(f"sweep.{key}: value {repeated[0]!r} appears more than once")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def with_control(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` pruned by its structure's random control, re-validated like any config."""
    return CONTROLS.get("random").derive(spec)


def plan_from_mapping(data: Mapping[str, Any]) -> Plan:
    data = deep_copy(data)
    grid = data.pop(SWEEP_KEY, None)
    chosen = data.pop(CONTROLS_KEY, None)
    baselines = data.pop(BASELINES_KEY, grid is not None or chosen is not None)
    if not isinstance(baselines, bool):
        raise ConfigError(f"baselines: must be true or false (got {baselines!r})")
    controls = parse_controls(list(DEFAULT_CONTROLS) if chosen is None else chosen)
    if not baselines and chosen:
        raise ConfigError("controls: baselines is false, which turns every control off: drop one of the two")
    specs: dict[str, ExperimentSpec] = {}
    settings: RunSettings | None = None
    for point in expand_grid(grid) if grid is not None else [{}]:
        config = deep_copy(data)
        for key, value in point.items():
            set_dotted(config, str(key).split("."), value)
        try:
            spec, settings = build_specs(config)
        except ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise ConfigError(f"{exc} (sweep point {where})" if where else str(exc)) from None
        specs.setdefault(spec.run_id, spec)
    added: set[str] = set()
    if baselines:
        for control in controls_for(list(specs.values()), controls):
            if control.run_id not in specs:
                specs[control.run_id] = control
                added.add(control.run_id)
    assert settings is not None  # at least one point was built
    pruned = [Job("pruned", s, "control" if s.run_id in added else "method") for s in specs.values()]
    dense: dict[str, Job] = {}
    for job in pruned:
        dense.setdefault(job.spec.dense_spec().content_hash(), Job("dense", job.spec))
    return Plan(jobs=[*dense.values(), *pruned], settings=settings, is_sweep=grid is not None)


def load_plan(path: str | Path, overrides: Sequence[str] = ()) -> Plan:
    return plan_from_mapping(read_config(path, overrides))
