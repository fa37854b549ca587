"""Every default of the spec is hashed: changing any one of them changes the run id.

The keys are walked from the pydantic models themselves (classifier and language-model keys,
nested sections included), so a key added later is covered without touching this file. For
each key, its default is changed in a subclass (the way the issue showed the fault: a recipe
whose ``precision`` default is bf16 got the fp32 run's id) and the spec is built again from the
same config, which leaves the key out.
"""

from __future__ import annotations

import copy
import functools
import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError, create_model
from pydantic.fields import FieldInfo

from prunebench.spec import hashing
from prunebench.spec import ExperimentSpec, TrainSpec, build_specs
from prunebench.errors import ConfigError
from prunebench.record import load_result, read_result

CLASSIFIER: dict[str, Any] = {"dataset": "digits", "model": "mlp"}
LM: dict[str, Any] = {"dataset": "shakespeare", "model": "smollm2-135m", "prune": {"strategy": "wanda", "scope": "row"}}
# Configs under which each key applies: a key is covered when one of them hashes its change.
BASES: dict[str, dict[str, Any]] = {
    "classifier": CLASSIFIER,
    "channel": {**CLASSIFIER, "prune": {"strategy": "l1_filter", "structure": "channel", "speedup": 2.0}},
    "channel-merge": {**CLASSIFIER, "prune": {"strategy": "l1_filter", "structure": "channel", "merge": True}},
    "iterative": {**CLASSIFIER, "prune": {"schedule": "iterative"}},
    "rounds": {**CLASSIFIER, "prune": {"schedule": "iterative", "scope": "layer", "iterative": {"rounds": 2}}},
    "gradual": {**CLASSIFIER, "prune": {"schedule": "gradual"}},
    "snip": {**CLASSIFIER, "prune": {"strategy": "snip"}},
    "weight-rewind": {**CLASSIFIER, "retrain": {"mode": "weight-rewind"}},
    "lr-rewind": {**CLASSIFIER, "retrain": {"mode": "lr-rewind"}},
    "scratch": {**CLASSIFIER, "retrain": {"mode": "scratch"}},
    "compress": {**CLASSIFIER, "compress": {}},
    "lm": LM,
    "lm-sparsegpt": {**LM, "prune": {"strategy": "sparsegpt", "scope": "layer"}},
    # the papers' protocol resolves stride to the window, so a changed window default shows under sliding
    "lm-sliding": {**LM, "evaluation": {"protocol": "sliding"}},
}
# What a default may change to, for keys whose type alone does not say (names, mappings, tuples).
ALTERNATIVES: dict[str, list[Any]] = {
    "strategy": ["random", "snip"],
    "mode": ["reinit", "scratch-e"],
    "schedule": ["at-init", "iterative"],
    "structure": ["block:2x2", "2:4"],
    "allocation": ["owl"],
    "options": [{"batches": 2}, {"blocksize": 64}],
    "layer_rates": [{"*": 0.5}],
    "bits": [{"conv": 8, "linear": 4}],
    "index_bits": [{"conv": 8, "linear": 4}],
    "lr_milestones": [(1,)],
    "end_step": [1000],  # at least prune.gradual.frequency past start_step
    "layer_types": [("Linear",)],
    "target_modules": [("q_proj",)],  # recovery.target_modules

    "tasks": [("cloze",)],  # evaluation.tasks: a known task name
    "exclude": [("0.*",)],
}
# The dense model's file is hashed by its content (dense.sha256, filled in from the file), never
# by its path; neither default can reach a valid spec on its own (a digest needs its file).
NOT_HASHED = {("dense", "checkpoint"): "the path: its content is hashed", ("dense", "sha256"): "filled in from the file",
              # Left out, prune.scope is the method's own default scope, filled in before validation, so
              # the field's default is never read: the resolved scope is hashed (test below).
              ("prune", "scope"): "the method's default scope"}


def members(annotation: Any) -> list[Any]:
    """The types a field may hold, None and annotations aside (``Int | None`` -> [int])."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    found = [a for a in (typing.get_args(annotation) if union else (annotation,)) if a is not type(None)]
    return [typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in found]


def sections(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a field holds (``CompressSpec | None`` -> [CompressSpec])."""
    return [a for a in members(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]


def keys(model: type[BaseModel] = ExperimentSpec, path: tuple[str, ...] = ()) -> Iterator[tuple[type[BaseModel], tuple[str, ...]]]:
    """(owning model, dotted path) of every key with a default, sections walked into."""
    for name, info in model.model_fields.items():
        nested = sections(info.annotation)
        if not info.is_required() and (not nested or info.default is None):
            yield model, (*path, name)  # a leaf, or an optional section (absent by default)
        for section in nested:
            yield from keys(section, (*path, name))


def bounds(info: FieldInfo) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in info.metadata:
        for bound in ("gt", "ge", "lt", "le"):
            if getattr(item, bound, None) is not None:
                found[bound] = getattr(item, bound)
    return found


def within(value: float, limits: dict[str, float]) -> bool:
    return (value > limits.get("gt", -1e18) and value >= limits.get("ge", -1e18)
            and value < limits.get("lt", 1e18) and value <= limits.get("le", 1e18))


def alternatives(model: type[BaseModel], name: str) -> list[Any]:
    """Values other than the default that the key's type and bounds allow."""
    info = model.model_fields[name]
    default = info.get_default(call_default_factory=True)
    if name in ALTERNATIVES:
        return [v for v in ALTERNATIVES[name] if v != default]
    kind = members(info.annotation)[0]
    if typing.get_origin(kind) is Literal:
        return [v for v in typing.get_args(kind) if v != default]
    if kind is bool:
        return [not default]
    if kind in (int, float):
        start = default if default is not None else 1
        candidates = [start + 1, start * 2, start / 2, start + 0.5, 0.25, 1.5, 2.5, 3]
        if kind is int:
            candidates = [c for c in candidates if float(c).is_integer()]
        return [kind(c) for c in candidates if kind(c) != default and within(c, bounds(info))][:2]
    if sections(kind):
        return [sections(kind)[0]()]  # an optional section turned on with its own defaults
    return []


def with_default(model: type[BaseModel], name: str, value: Any) -> type[BaseModel]:
    """A subclass of ``model`` whose ``name`` defaults to ``value``, its bounds kept."""
    info = copy.copy(model.model_fields[name])
    info.default, info.default_factory = value, None
    info._attributes_set = {k: v for k, v in info._attributes_set.items() if k != "default_factory"}
    info._attributes_set["default"] = value
    return create_model(f"{model.__name__}With{name.title()}", __base__=model, **{name: (info.annotation, info)})


def given(base: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``base`` sets the key itself (then its default does not apply)."""
    node: Any = base
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def build_patched(base: dict[str, Any], path: tuple[str, ...], patched: type[BaseModel]) -> ExperimentSpec | None:
    """``base`` built as a spec whose section holding ``path``'s key is ``patched``: the section's
    other values as ``base`` resolves them, the key itself left out (so its default applies).
    None where ``base`` has no such section (an optional one left out)."""
    if len(path) == 1:
        return patched.model_validate(base)  # type: ignore[return-value]
    section = functools.reduce(getattr, path[:-1], build_specs(base)[0])
    if section is None:
        return None
    values = {k: v for k, v in section.model_dump().items() if k != path[-1]}
    data = json.loads(json.dumps(base))
    parent = data
    for part in path[:-2]:
        parent = parent.setdefault(part, {})
    parent[path[-2]] = patched.model_validate(values)
    return ExperimentSpec.model_validate(data)


def test_the_walk_reaches_every_section() -> None:
    found = {".".join(path) for _, path in keys()}
    for key in ("seed", "compress", "compress.huffman", "train.precision", "finetune.compile", "prune.merge",
                "prune.iterative.rate", "prune.gradual.frequency", "prune.calibration.n_samples",
                "prune.prunable.exclude", "retrain.rewind_step", "evaluation.window", "recovery.steps", "subset"):
        assert key in found
    assert "dataset" not in found and "dense" not in found  # required keys, and sections, have no default of their own


def test_changing_any_default_changes_the_run_id() -> None:
    plain = {name: build_specs(base)[0].run_id for name, base in BASES.items()}
    uncovered = []
    for model, path in keys():
        if path in NOT_HASHED:
            continue
        changed = []
        for value in alternatives(model, path[-1]):
            patched = with_default(model, path[-1], value)
            for name, base in BASES.items():
                if given(base, path):
                    continue
                try:
                    spec = build_patched(base, path, patched)
                except (ValidationError, ConfigError, ValueError):
                    continue  # the changed default does not apply to this config
                if spec is None:
                    continue
                changed.append(spec.run_id != plain[name])
        if not any(changed):
            uncovered.append(f"{'.'.join(path)} ({'unchanged' if changed else 'no valid config'})")
    assert not uncovered, f"run id blind to a changed default: {uncovered}"


def test_the_issues_bf16_recipe_gets_its_own_id() -> None:
    bf16 = with_default(TrainSpec, "precision", "bf16")
    fp32_spec = build_specs(CLASSIFIER)[0]
    bf16_spec = build_patched(CLASSIFIER, ("train", "precision"), bf16)
    assert bf16_spec is not None and bf16_spec.train.precision == "bf16" and bf16_spec.run_id != fp32_spec.run_id
    assert bf16_spec.dense_spec().content_hash() != fp32_spec.dense_spec().content_hash()


def test_the_spec_version_is_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = build_specs(CLASSIFIER)[0]
    assert json.loads(spec.canonical_json())["spec_version"] == hashing.SPEC_VERSION
    before, dense = spec.run_id, spec.dense_spec().content_hash()
    monkeypatch.setattr(hashing, "SPEC_VERSION", hashing.SPEC_VERSION + 1)
    assert spec.run_id != before and spec.dense_spec().content_hash() != dense


def test_results_from_before_versioned_ids_still_load() -> None:
    old = read_result(Path(__file__).parent / "data" / "legacy-result.json")
    assert old.spec_version is None and old.run_id == "0b805a378a70ae3a"
    written_before = {k: v for k, v in old.model_dump(mode="json").items() if k != "spec_version"}  # a schema-2 file of before
    assert load_result(written_before).spec_version is None


def test_a_left_out_scope_is_the_methods_default_and_is_hashed() -> None:
    """The scope a method chooses when the config leaves it out is in the hashed JSON, so a
    method whose default scope changes (as obs's did, to layer) gets new run ids."""
    def spec(prune: dict[str, Any]) -> ExperimentSpec:
        return ExperimentSpec.model_validate({**CLASSIFIER, "prune": prune})

    for strategy, scope in (("obs", "layer"), ("magnitude", "global")):
        left_out = spec({"strategy": strategy})
        assert json.loads(left_out.canonical_json())["prune"]["scope"] == scope
        assert left_out.run_id == spec({"strategy": strategy, "scope": scope}).run_id
    assert spec({"strategy": "magnitude"}).run_id != spec({"strategy": "magnitude", "scope": "layer"}).run_id
