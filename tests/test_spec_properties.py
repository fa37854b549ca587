"""Over every strategy x structure x schedule x retraining mode x target: a spec the config
accepts loads back from its JSON to the same run id; one it refuses is refused while planning,
before anything is trained or written."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from prunebench.catalog import RETRAIN_MODES, SCHEDULES, channel_strategies, strategies
from prunebench.cli import main
from prunebench.spec import ExperimentSpec, build_specs
from prunebench.errors import ConfigError
from prunebench.plan.sweep import plan_from_mapping

STRUCTURES = ("unstructured", "2:4", "block:2x2", "channel")
TARGETS: dict[str, dict[str, Any]] = {
    "default": {},
    "compression": {"compression": 8},
    "speedup": {"speedup": 2.0},
    "channel_fraction": {"channel_fraction": 0.25},
    "rounds": {"iterative": {"rounds": 2}},
}
RETRAIN_SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "rewind_step": {"rewind_step": 3},
    "rewind_epoch": {"rewind_epoch": 1},
    "scratch_epochs": {"scratch_epochs": 2},
}
BASE = {"dataset": "digits", "model": "mlp", "train": {"epochs": 2}}
SPEC_DIR = Path(__file__).resolve().parents[1] / "src" / "prunebench" / "spec"


def config(strategy: str, structure: str, schedule: str, mode: str, target: str, setting: str) -> dict[str, Any]:
    return {
        **BASE,
        "prune": {"strategy": strategy, "structure": structure, "schedule": schedule, **TARGETS[target]},
        "retrain": {"mode": mode, **RETRAIN_SETTINGS[setting]},
    }


def combinations() -> list[tuple[str, str, str, str, str, str]]:
    names = strategies().names()  # weight and channel strategies: one registry
    return list(itertools.product(names, STRUCTURES, SCHEDULES.names(), RETRAIN_MODES.names(), TARGETS, RETRAIN_SETTINGS))


def outcome(combo: tuple[str, ...]) -> ExperimentSpec | ConfigError:
    try:
        plan = plan_from_mapping(config(*combo))
    except ConfigError as exc:
        return exc
    (job,) = plan.pruned_jobs
    return job.spec


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, ...], ExperimentSpec | ConfigError]:
    return {combo: outcome(combo) for combo in combinations()}  # any other exception fails here


def test_every_accepted_spec_loads_back_from_its_json_to_the_same_run_id(outcomes: dict) -> None:  # type: ignore[type-arg]
    accepted = {c: s for c, s in outcomes.items() if isinstance(s, ExperimentSpec)}
    assert len(accepted) > 100
    for combo, spec in accepted.items():
        stored = json.loads(json.dumps(spec.model_dump(mode="json")))  # as result.json holds it
        again = ExperimentSpec.model_validate(stored)
        assert again.run_id == spec.run_id, combo
        assert again == spec, combo
        assert build_specs(stored)[0].run_id == spec.run_id, combo
        # the dense checkpoint's id is as stable
        assert again.dense_spec().content_hash() == spec.dense_spec().content_hash()


def test_acceptance_follows_the_registered_objects(outcomes: dict) -> None:  # type: ignore[type-arg]
    for (strategy, structure, schedule, mode, target, setting), spec in outcomes.items():
        rules = RETRAIN_MODES.get(mode)
        if isinstance(spec, ExperimentSpec):
            assert schedule in rules.schedules
            used = SCHEDULES.get(schedule).retrain_settings(rules)
            assert setting == "none" or setting in used
            assert (strategy in channel_strategies()) == (structure == "channel")
        elif schedule not in rules.schedules and isinstance(
            outcomes[(strategy, structure, schedule, "finetune", target, "none")], ExperimentSpec
        ):  # the pruning part is fine: the mode is what is refused
            assert "retrain.mode" in str(spec) and "prune.schedule" in str(spec)


def test_every_schedule_mode_structure_and_target_kind_is_accepted_somewhere(outcomes: dict) -> None:  # type: ignore[type-arg]
    accepted = [c for c, s in outcomes.items() if isinstance(s, ExperimentSpec)]
    for index, names in enumerate((STRUCTURES, SCHEDULES.names(), RETRAIN_MODES.names(), TARGETS, RETRAIN_SETTINGS)):
        assert {c[index + 1] for c in accepted} == set(names)
    for schedule in SCHEDULES:
        for mode in RETRAIN_MODES:
            if schedule in RETRAIN_MODES.get(mode).schedules:
                assert any(c[2:4] == (schedule, mode) for c in accepted), (schedule, mode)


def test_speedup_runs_load_back(outcomes: dict) -> None:  # type: ignore[type-arg]
    """A channel run with a speedup target: its stored spec has no compression and re-validates."""
    spec = outcomes[("l1_filter", "channel", "one-shot", "finetune", "speedup", "none")]
    assert isinstance(spec, ExperimentSpec)
    stored = spec.model_dump(mode="json")
    assert stored["prune"]["compression"] is None and stored["prune"]["speedup"] == 2.0
    assert ExperimentSpec.model_validate(stored).run_id == spec.run_id


REFUSED_BY_CLI = [
    ("magnitude", "unstructured", "gradual", "scratch-b", "default", "none"),  # mode the schedule cannot use
    ("magnitude", "2:4", "iterative", "finetune", "default", "none"),  # N:M cannot refine a mask
    ("l1_filter", "unstructured", "one-shot", "finetune", "default", "none"),  # a channel strategy on weights
    ("magnitude", "unstructured", "one-shot", "finetune", "speedup", "none"),  # a channel target on weights
    ("magnitude", "unstructured", "iterative", "scratch-e", "default", "rewind_step"),  # rounds rewind to init
]


@pytest.mark.parametrize("combo", REFUSED_BY_CLI)
def test_refused_combinations_write_nothing(combo: tuple[str, ...], outcomes: dict, tmp_path: Path,  # type: ignore[type-arg]
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(outcomes[combo], ConfigError)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(*combo)))
    results = tmp_path / "results"
    assert main(["-q", "run", str(path), "--results", str(results), "--executor", "serial"]) == 2
    assert not results.exists()
    err = capsys.readouterr().err
    assert err.startswith("prunebench: error: ") and len(err.strip().splitlines()) == 1


def test_list_prints_schedules_and_modes_with_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "schedules"]) == 0
    out = capsys.readouterr().out
    for name in SCHEDULES:
        assert f"  {name}: {SCHEDULES.get(name).description}" in out
    assert "prune.iterative: rate=0.2, rounds=None" in out and "prune.gradual: initial_sparsity=0.0" in out
    assert main(["list", "retrain-modes"]) == 0
    out = capsys.readouterr().out
    for name in RETRAIN_MODES:
        assert f"  {name}: {RETRAIN_MODES.get(name).description}" in out
    assert "retrain.rewind_epoch=0" in out and "iterative rounds rewind to retrain.rewind_step" in out


def _top_level_imports(module: str) -> set[str]:
    import ast
    import importlib.util

    origin = importlib.util.find_spec(module).origin  # type: ignore[union-attr]
    tree = ast.parse(Path(str(origin)).read_text())
    names = set()
    for node in tree.body:  # module level only: catalog's lookups import when a spec is validated
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module + ("." + node.names[0].name if node.module == "prunebench" else ""))
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {n for n in names if n.startswith("prunebench")}


def test_the_schema_imports_no_implementation() -> None:
    """The spec knows names, not implementations: its modules import only each other, the catalog, the safe YAML reader, errors, the latency settings' names and pure data types."""
    modules = sorted(f"prunebench.spec.{p.stem}" for p in SPEC_DIR.glob("*.py") if p.stem != "__init__")
    outside = set().union(*(_top_level_imports(m) for m in ["prunebench.spec", *modules])) - {"prunebench.spec", *modules}
    assert len(modules) >= 8 and outside == {"prunebench.catalog", "prunebench.config_file", "prunebench.errors",
                                            "prunebench.latency_names", "prunebench.pruning.policy", "prunebench.target"}
    assert _top_level_imports("prunebench.config") == {"prunebench.spec"}  # the old home: names only
    # The vocabulary (schedules, retraining modes) is defined below the schema, not by experiment/.
    assert _top_level_imports("prunebench.catalog") == {"prunebench.registry", "prunebench.catalog.retrain_modes",
                                                        "prunebench.catalog.schedules"}
    assert _top_level_imports("prunebench.catalog.schedules") == {"prunebench.registry", "prunebench.catalog.retrain_modes"}
    assert _top_level_imports("prunebench.catalog.retrain_modes") == {"prunebench.registry"}
