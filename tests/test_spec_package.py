"""The spec as a package: small modules, and a vocabulary known without importing experiment/."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from prunebench.catalog import RETRAIN_MODES, SCHEDULES
from test_layering import module_graph, reachable

SPEC_DIR = Path(__file__).resolve().parents[1] / "src" / "prunebench" / "spec"


def test_no_spec_module_is_over_300_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in SPEC_DIR.glob("*.py")}
    assert len(sizes) >= 9 and max(sizes.values()) <= 300, sizes


def test_the_vocabulary_is_defined_below_the_spec() -> None:
    """What "one-shot" or "weight-rewind" means to the schema is in the catalog, which nothing of
    experiment/ fills in: every registered schedule and mode is a catalog object, and no file the
    spec imports (at any depth, inside functions too) is part of experiment/."""
    for registry, module in ((SCHEDULES, "prunebench.catalog.schedules"), (RETRAIN_MODES, "prunebench.catalog.retrain_modes")):
        assert len(registry) >= 4 and {type(registry.get(n)).__module__ for n in registry} == {module}
    edges = module_graph()
    below = reachable(edges, "prunebench.spec")
    assert "prunebench.catalog.schedules" in below and "prunebench.pruning.structures" in below  # the graph sees them
    assert not [m for m in below if m.startswith("prunebench.experiment") or m == "prunebench.config"]


def test_every_schedule_and_mode_of_the_catalog_runs() -> None:
    """experiment/ extends each registered name with how it runs: none is left without a runner."""
    from prunebench.experiment import retrain, schedules

    assert set(schedules.RUNNERS) == set(SCHEDULES)
    assert set(retrain.RUNNERS) == set(RETRAIN_MODES)
    for name, runner in schedules.RUNNERS.items():
        rules = SCHEDULES.get(name)
        assert isinstance(runner, type(rules)) and (runner.section, runner.refines_masks) == (rules.section, rules.refines_masks)
    for name, mode in retrain.RUNNERS.items():
        rules = RETRAIN_MODES.get(name)
        assert isinstance(mode, type(rules)) and dataclasses.astuple(mode) == dataclasses.astuple(rules)


def test_a_schedule_or_mode_registered_with_its_runner_runs_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin may register one object that is both rules and runner; the built-ins run from RUNNERS."""
    from prunebench.experiment import retrain, schedules

    mode = retrain.RetrainMode("plugin-mode", "a plugin's mode", "pruned", "finetune")
    monkeypatch.setitem(RETRAIN_MODES._entries, "plugin-mode", mode)
    assert retrain.mode_named("plugin-mode") is mode
    assert retrain.mode_named("finetune") is retrain.RUNNERS["finetune"] is not RETRAIN_MODES.get("finetune")

    class PluginSchedule(schedules.Schedule):
        name = "plugin-schedule"

    schedule = PluginSchedule()
    monkeypatch.setitem(SCHEDULES._entries, "plugin-schedule", schedule)
    spec_of = lambda name: SimpleNamespace(prune=SimpleNamespace(schedule=name))  # noqa: E731  (reads only this)
    assert schedules.schedule_of(spec_of("plugin-schedule")) is schedule  # type: ignore[arg-type]
    assert schedules.schedule_of(spec_of("gradual")) is schedules.RUNNERS["gradual"]  # type: ignore[arg-type]


def test_replace_suggests_keys_of_the_section_it_is_called_on() -> None:
    """Spec.replace formats its errors against its own class: a section's keys for a section, and
    no settings key (which replace cannot take) for a whole spec."""
    from prunebench.errors import ConfigError
    from prunebench.spec import ExperimentSpec, TrainSpec

    with pytest.raises(ConfigError, match=r"^epoch: unknown key; did you mean epochs\?$"):
        TrainSpec().replace(epoch=3)
    spec = ExperimentSpec(dataset="digits", model="mlp")
    with pytest.raises(ConfigError, match=r"^sede: unknown key; did you mean seed\?$"):
        spec.replace(sede=1)
    with pytest.raises(ConfigError, match=r"^threads: unknown key$"):
        spec.replace(threads=1)
