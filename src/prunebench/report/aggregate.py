"""From completed rows to curves: per (dataset, model), per (strategy, setting), per level.

A run's setting is its scope plus whatever else differs from the one-shot, unstructured,
fine-tuned default (schedule, structure, retraining mode), so different methods never share
a curve.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prunebench.report.results import DENSE_MISMATCH
from prunebench.report.stats import Estimate, estimate

Series = tuple[str, str]  # (strategy, setting)


def setting_of(spec: dict[str, Any]) -> str:
    """'global', or e.g. 'layer, iterative, weight-rewind' for non-default methods."""
    prune = spec.get("prune", {})
    parts = [prune.get("scope", "global")]
    if prune.get("schedule", "one-shot") != "one-shot":
        parts.append(prune["schedule"])
    if prune.get("structure", "unstructured") != "unstructured":
        parts.append(prune["structure"])
    mode = spec.get("retrain", {}).get("mode", "finetune")
    if mode != "finetune":
        parts.append(mode)
    return ", ".join(parts)


@dataclass
class Point:
    level: float  # target compression
    top1: dict[int, float] = field(default_factory=dict)  # seed -> value
    compression: dict[int, float] = field(default_factory=dict)
    speedup: dict[int, float] = field(default_factory=dict)
    measured_speedup: dict[int, float] = field(default_factory=dict)  # only for runs that timed latency
    latency_ms: dict[int, float] = field(default_factory=dict)

    def top1_estimate(self) -> Estimate:
        return estimate(list(self.top1.values()))

    def mean_compression(self) -> float:
        return estimate(list(self.compression.values())).mean

    def mean_speedup(self) -> float:
        return estimate(list(self.speedup.values())).mean


@dataclass
class Group:
    dataset: str
    model: str
    series: dict[Series, dict[float, Point]] = field(default_factory=lambda: defaultdict(dict))
    dense_top1: dict[int, float] = field(default_factory=dict)
    finetune_ids: set[str] = field(default_factory=set)
    latency_setups: set[str] = field(default_factory=set)
    rows: int = 0

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.model}"

    def levels(self, series: Series) -> list[float]:
        return sorted(self.series[series])

    def has_latency(self) -> bool:
        return any(p.measured_speedup for points in self.series.values() for p in points.values())

    def seeds(self) -> set[int]:
        return {seed for points in self.series.values() for p in points.values() for seed in p.top1}


def latency_setup(latency: dict[str, Any]) -> str:
    """Latency means nothing without how it was measured: runtime, device, threads, batch, dtype."""
    allocator = f", {latency['allocator']} allocator" if latency.get("allocator") else ""
    return (
        f"{latency['runtime']} on {latency['device']}, {latency['threads']} thread(s), "
        f"batch {latency['batch_size']}, {latency['dtype']}{allocator}"
    )


def build_groups(rows: list[dict[str, Any]]) -> list[Group]:
    groups: dict[tuple[str, str], Group] = {}
    for row in rows:
        if row["status"] != "completed" or not row.get("result"):
            continue
        if row.get("dense_check") == DENSE_MISMATCH:  # paired with weights the checkpoint no longer holds
            continue
        key = (row["dataset"], row["model"])
        group = groups.setdefault(key, Group(*key))
        group.rows += 1
        result, seed = row["result"], row["seed"]
        group.dense_top1[seed] = result["dense_top1"]
        if row["kind"] == "dense":
            continue
        group.finetune_ids.add(row["finetune_id"])
        points = group.series[(row["strategy"], setting_of(row["spec"]))]
        point = points.setdefault(row["target_compression"], Point(row["target_compression"]))
        point.top1[seed] = result["top1"]
        point.compression[seed] = result["compression_ratio"]
        point.speedup[seed] = result["theoretical_speedup"]
        if result.get("measured_speedup") is not None:
            point.measured_speedup[seed] = result["measured_speedup"]
            point.latency_ms[seed] = result["latency"]["pruned_ms"]
            group.latency_setups.add(latency_setup(result["latency"]))
    return sorted(groups.values(), key=lambda g: (g.dataset, g.model))
