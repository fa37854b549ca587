"""From completed rows to curves: per (dataset, model), per curve, per target.

A point is keyed by everything in the run's spec except the seed (dense and retraining
recipes, strategy and options, scope, schedule and its settings, structure, retraining mode,
target kind and value, val_fraction, prunable policy...), so runs that differ in anything but
the seed are never averaged together. A curve is everything except the seed and the target
value; its points are the targets, drawn at the compression they reached. Curves are labelled
by the settings that differ between the curves of their group (the strategy always shown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

from prunebench.spec import DenseSpec
from prunebench.plan.controls import CONTROLS, control_of
from prunebench.record import Role, RunResult, TaskScore, Target, role_of
from prunebench.store.layout import DENSE_MISMATCH
from prunebench.report.stats import Estimate, accuracy_estimate, estimate

# Parts of a pruned run's spec that a control changes (sweep: random pruning, global scope).
CONTROL_KEYS = ("prune.strategy", "prune.scope", "prune.options")
DENSE_KEYS = (*(name for name in DenseSpec.model_fields if name != "seed"), "evaluation")  # evaluation: LMs
CHECKPOINT_PATH = "dense.checkpoint"  # where the file lies, not what it holds (dense.sha256): not in the id
RANDOM_CONTROL = "random"
# Keys a control marks its runs with: the label names the control instead.
CONTROL_MARKS = tuple(k for name in CONTROLS for k in CONTROLS.get(name).marks if k.startswith("prune."))
# Keys that hold a target value: in a label they would only repeat the target (shown per point).
TARGET_KEYS = tuple(
    Target(kind=k, value=0).spec_key() for k in ("compression", "speedup", "channel_fraction", "rounds", "sparsity")
)

Settings = tuple[tuple[str, str], ...]  # sorted (dotted key, JSON value) pairs


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"prune": {"scope": "layer"}}`` -> ``{"prune.scope": '"layer"'}`` (values as JSON)."""
    flat: dict[str, str] = {}
    for key, value in spec.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = as_json(value)
    return flat


def as_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True)``, the common scalars without its per-call cost: a
    spec has about 65 leaves, and the report and ``prunebench results`` flatten every row's."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)  # what json.dumps does for a str (ensure_ascii)
    if value is None or value is True or value is False:
        return "null" if value is None else "true" if value else "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, sort_keys=True)  # NaN, infinities, lists, empty mappings, subclasses


def curve_settings(spec: Mapping[str, Any], target: Target) -> dict[str, str]:
    """The spec without seed and target value, plus the target kind: what a curve shares."""
    flat = {k: v for k, v in flatten(spec).items() if k not in ("seed", target.spec_key(), CHECKPOINT_PATH)}
    flat["target.kind"] = json.dumps(target.kind)
    return flat


def dense_key(spec: Mapping[str, Any]) -> Settings:
    """The dense spec without the seed: what a dense accuracy is filed under.

    A run's spec names its checkpoint file's digest as ``dense.sha256``, a dense row's spec as
    ``checkpoint_sha256``; without a checkpoint neither is part of the key.
    """
    fields = {k: spec[k] for k in DENSE_KEYS if k in spec}
    source = spec.get("dense")
    if isinstance(source, Mapping):
        fields["checkpoint_sha256"] = source.get("sha256")
    if fields.get("checkpoint_sha256") is None:
        fields.pop("checkpoint_sha256", None)
    return tuple(sorted(flatten(fields).items()))


def shown(value: str) -> str:
    """A JSON value as a label shows it: strings unquoted."""
    parsed = json.loads(value)
    return parsed if isinstance(parsed, str) else value


@dataclass
class Point:
    target: Target
    top1: dict[int, float] = field(default_factory=dict)  # seed -> value
    compression: dict[int, float] = field(default_factory=dict)
    speedup: dict[int, float] = field(default_factory=dict)
    measured_speedup: dict[int, float] = field(default_factory=dict)  # only for runs that timed latency
    latency_ms: dict[int, float] = field(default_factory=dict)
    # (runtime, form) -> seed -> (measured speedup, dense ms, pruned ms); BEST: each model in its fastest form
    form_latency: dict[tuple[str, str], dict[int, tuple[float, float, float]]] = field(default_factory=dict)
    storage_compression: dict[int, float] = field(default_factory=dict)  # only for runs with a compress stage
    quantized_top1: dict[int, float] = field(default_factory=dict)
    pre_top1: dict[int, float] = field(default_factory=dict)  # right after pruning, before retraining
    layer_density: dict[int, dict[str, float]] = field(default_factory=dict)  # seed -> layer -> kept fraction
    jsv_mean: dict[int, float] = field(default_factory=dict)  # trainability right after pruning
    prune_s: dict[int, float] = field(default_factory=dict)  # cost: scoring and selection
    retrain_s: dict[int, float] = field(default_factory=dict)
    prune_peak_mb: dict[int, float] = field(default_factory=dict)
    # language models: perplexity after recovery (or pruning), right after pruning, sparsity reached
    perplexity: dict[int, float] = field(default_factory=dict)
    pre_perplexity: dict[int, float] = field(default_factory=dict)
    sparsity: dict[int, float] = field(default_factory=dict)
    tasks: dict[str, dict[int, TaskScore]] = field(default_factory=dict)  # zero-shot task -> seed -> score

    @property
    def values(self) -> dict[int, float]:
        """seed -> the point's quality metric: top-1, or perplexity for a language model."""
        return self.perplexity or self.top1

    @property
    def level(self) -> str:
        return self.target.label()

    def top1_estimate(self) -> Estimate:
        return accuracy_estimate(list(self.top1.values()))

    def mean_compression(self) -> float:
        """The x position: the compression the runs reached (a round count or N:M sets no ratio)."""
        return estimate(list(self.compression.values())).mean

    def mean_speedup(self) -> float:
        return estimate(list(self.speedup.values())).mean


@dataclass
class Curve:
    strategy: str
    role: Role
    settings: dict[str, str]  # curve_settings of its runs
    retrain_recipe: str | None  # the row's id of its finetune + retrain sections (record.recipe_id)
    points: dict[str, Point] = field(default_factory=dict)  # JSON target value -> point
    setting: str = ""  # what differs from the group's other curves; set by build_groups
    control: str | None = None  # a control's name (prunebench.plan.controls); None for a method

    @property
    def target_kind(self) -> str:
        return json.loads(self.settings["target.kind"])

    @property
    def scope(self) -> str:
        return shown(self.settings.get("prune.scope", '"global"'))

    @property
    def name(self) -> str:
        """The strategy, and the sanity control applied to it (``magnitude layer-shuffle``)."""
        return f"{self.strategy} {self.control}" if self.control not in (None, RANDOM_CONTROL) else self.strategy

    @property
    def is_sanity_control(self) -> bool:
        """A control derived from one method's own run (layer-shuffle, reinit), not random pruning."""
        return self.control not in (None, RANDOM_CONTROL)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.setting})" if self.setting else self.name

    def ordered(self) -> list[Point]:
        """Points by the compression they reached."""
        return sorted(self.points.values(), key=lambda p: (p.mean_compression(), p.level))

    def comparison(self) -> Settings:
        """What a fair comparison holds equal: all settings but strategy, scope and options."""
        return tuple(sorted((k, v) for k, v in self.settings.items() if not k.startswith(CONTROL_KEYS)))


@dataclass
class Dense:
    settings: dict[str, str]
    top1: dict[int, float] = field(default_factory=dict)  # seed -> value
    setting: str = ""
    perplexity: dict[int, float] = field(default_factory=dict)  # language models (the same for every seed)
    tasks: dict[str, dict[int, TaskScore]] = field(default_factory=dict)  # zero-shot task -> seed -> score


@dataclass
class Group:
    dataset: str
    model: str
    curves: dict[Settings, Curve] = field(default_factory=dict)
    dense: dict[Settings, Dense] = field(default_factory=dict)
    latency_setups: set[str] = field(default_factory=set)
    rows: int = 0
    params_total: int | None = None  # the dense model's parameters and MACs per example
    prunable_total: int | None = None
    macs_dense: int | None = None
    dense_recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # dense recipe id -> spec 'train'
    retrain_recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # retrain recipe id -> recipe as run
    versions: set[tuple[tuple[str, str], ...]] = field(default_factory=set)  # provenance of the runs
    jsv_methods: set[str] = field(default_factory=set)  # how the trainability JSVs were computed
    peak_methods: set[str] = field(default_factory=set)  # how the pruning peak memory was measured

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.model}"

    def sorted_curves(self) -> list[Curve]:
        return sorted(self.curves.values(), key=lambda c: (c.role != "method", c.label))

    def source_of(self, control: Curve) -> Curve | None:
        """The method curve a sanity control (layer-shuffle, reinit) was derived from."""
        if not control.is_sanity_control or control.control is None:
            return None
        rules = CONTROLS.get(control.control)
        wanted = rules.source(control.settings)
        defaults = rules.source_values  # results written before a marked key existed lack it

        def same(settings: dict[str, str]) -> bool:
            return all(settings.get(k, defaults.get(k)) == wanted.get(k, defaults.get(k)) for k in {*settings, *wanted})

        return next((c for c in self.curves.values() if c.role == "method" and same(c.settings)), None)

    def has_latency(self) -> bool:
        return any(p.measured_speedup for c in self.curves.values() for p in c.points.values())

    @property
    def is_lm(self) -> bool:
        """A language-model comparison: perplexity, not accuracy."""
        return any(d.perplexity for d in self.dense.values()) or any(
            p.perplexity for c in self.curves.values() for p in c.points.values()
        )

    def seeds(self) -> set[int]:
        return {seed for c in self.curves.values() for p in c.points.values() for seed in p.values}

    def dense_seeds(self) -> int:
        return sum(len(d.perplexity or d.top1) for d in self.dense.values())


def latency_setup(latency: Any) -> str:
    """Latency means nothing without how it was measured: runtime, device, threads, batch, dtype."""
    allocator = f", {latency.allocator} allocator" if latency.allocator else ""
    return (
        f"{latency.runtime} on {latency.device}, {latency.threads} thread(s), "
        f"batch {latency.batch_size}, {latency.dtype}{allocator}"
    )


BEST = ("best", "each model's fastest")


def form_latencies(latency: Any) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(runtime, form) -> (measured speedup, dense ms, pruned ms) for every form a run timed,
    and under BEST each model in its fastest form; a record from before forms: its eager times."""
    found = {(f.runtime, f.form): (f.measured_speedup, f.dense_ms, f.pruned_ms) for f in latency.forms if not f.skipped}
    if not found:
        found[(latency.runtime, latency.form)] = (latency.measured_speedup, latency.dense_ms, latency.pruned_ms)
    if latency.best is not None and len(found) > 1:
        best = latency.best
        found[BEST] = (best.measured_speedup, best.dense_ms, best.pruned_ms)
    return found


def headline_latency(latency: Any) -> tuple[float, float]:
    """(measured speedup, pruned ms) as the report shows them: each model in its fastest form
    (best against best, docs/metrics.md); a record from before forms: its one timing."""
    best = latency.best
    return (best.measured_speedup, best.pruned_ms) if best is not None else (latency.measured_speedup, latency.pruned_ms)


def differences(settings: list[dict[str, str]], hidden: tuple[str, ...] = ()) -> list[str]:
    """Keys whose value is not the same in every one of ``settings``."""
    keys = sorted({k for s in settings for k in s})
    return [k for k in keys if k not in hidden and len({s.get(k) for s in settings}) > 1]


def describe(settings: dict[str, str], keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = settings.get(key)
        if value is None:  # this curve's target value (an N:M pattern is the structure)
            continue
        parts.append(f"target {shown(value)}" if key == "target.kind" else f"{key}={shown(value)}")
    return ", ".join(p for p in parts if p)


def label_curves(group: Group) -> None:
    """Label each curve by the keys that vary across its group's curves (the strategy is the name);
    a target other than compression is always named."""
    curves = list(group.curves.values())
    varying = differences([c.settings for c in curves], hidden=("prune.strategy", *CONTROL_MARKS, *TARGET_KEYS))
    for curve in curves:
        keys = varying if "target.kind" in varying or curve.target_kind == "compression" else ["target.kind", *varying]
        curve.setting = describe(curve.settings, keys)
    dense = list(group.dense.values())
    varying = differences([d.settings for d in dense])
    for entry in dense:
        entry.setting = describe(entry.settings, varying)


VERSION_KEYS = ("prunebench", "git_commit", "torch", "python", "platform", "device", "threads")


def note_provenance(group: Group, result: RunResult, row: Mapping[str, Any]) -> None:
    """What a reader needs to redo the comparison: the dense size, the recipes, the versions."""
    group.params_total = result.sizes.params_total
    group.macs_dense = result.macs.dense
    if result.target is not None:
        group.prunable_total = result.sizes.prunable_total
    if row.get("dense_recipe") is not None:
        group.dense_recipes.setdefault(row["dense_recipe"], dict(result.spec.get("train", {})))
    if result.retraining is not None and row.get("retrain_recipe") is not None:
        group.retrain_recipes.setdefault(row["retrain_recipe"], {"mode": result.retraining.mode, **result.retraining.recipe})
    versions = result.provenance.model_dump(mode="json")
    group.versions.add(tuple((k, str(versions[k])) for k in VERSION_KEYS if versions.get(k) is not None))


def build_groups(rows: list[dict[str, Any]]) -> list[Group]:
    groups: dict[tuple[str, str], Group] = {}
    for row in rows:
        result: RunResult | None = row.get("result")
        if row["status"] != "completed" or result is None:
            continue
        if row.get("dense_check") == DENSE_MISMATCH:  # paired with weights the checkpoint no longer holds
            continue
        key = (row["dataset"], row["model"])
        group = groups.setdefault(key, Group(*key))
        group.rows += 1
        seed = row["seed"]
        settings = dense_key(result.spec)
        dense = group.dense.setdefault(settings, Dense(dict(settings)))
        if result.accuracy is not None:
            dense.top1[seed] = result.accuracy.dense_top1
        if result.dense_perplexity is not None:
            dense.perplexity[seed] = result.dense_perplexity
        for task, score in (result.dense_tasks or {}).items():
            dense.tasks.setdefault(task, {})[seed] = score
        note_provenance(group, result, row)
        role = role_of(row.get("role"), row["strategy"], row["kind"] == "dense")
        if role == "dense" or result.target is None:
            continue
        curve_of = curve_settings(result.spec, result.target)
        curve_key = tuple(sorted(curve_of.items()))
        curve = group.curves.setdefault(
            curve_key, Curve(row["strategy"], role, curve_of, row.get("retrain_recipe")),
        )
        if role == "control":
            curve.role = "control"
            curve.control = control_of(curve_of)
        point = curve.points.setdefault(json.dumps(result.target.value), Point(result.target))
        if result.accuracy is not None:
            point.top1[seed] = result.accuracy.top1
        if result.perplexity is not None:
            point.perplexity[seed] = result.perplexity
            point.pre_perplexity[seed] = result.pre_finetune_perplexity or result.perplexity
        for task, score in (result.tasks or {}).items():
            point.tasks.setdefault(task, {})[seed] = score
        point.sparsity[seed] = result.sizes.sparsity
        point.compression[seed] = result.sizes.compression_ratio
        point.speedup[seed] = result.macs.theoretical_speedup
        accuracy = result.accuracy
        if result.sizes.storage_compression_ratio is not None and accuracy is not None and accuracy.quantized_top1 is not None:
            point.storage_compression[seed] = result.sizes.storage_compression_ratio
            point.quantized_top1[seed] = accuracy.quantized_top1
        if accuracy is not None and accuracy.pre_retrain_top1 is not None:
            point.pre_top1[seed] = result.accuracy.pre_retrain_top1
        point.prune_s[seed] = result.cost.prune_s if result.cost else result.timings.prune
        point.retrain_s[seed] = result.cost.retrain_s if result.cost else result.timings.retrain
        if result.cost is not None:
            point.prune_peak_mb[seed] = result.cost.prune_peak_mb
            group.peak_methods.add(result.cost.peak_method)
        if result.trainability is not None:
            point.jsv_mean[seed] = result.trainability.mean[1]  # exact, or the sketch's top-K mean: see jsv_methods
            group.jsv_methods.add(result.trainability.method)
        if result.sizes.layer_sparsity:
            point.layer_density[seed] = {k: 1.0 - v for k, v in result.sizes.layer_sparsity.items()}
        if result.latency is not None:
            point.measured_speedup[seed], point.latency_ms[seed] = headline_latency(result.latency)
            group.latency_setups.add(latency_setup(result.latency))
            for key, timed in form_latencies(result.latency).items():
                point.form_latency.setdefault(key, {})[seed] = timed
    for group in groups.values():
        label_curves(group)
    return sorted(groups.values(), key=lambda g: (g.dataset, g.model))
