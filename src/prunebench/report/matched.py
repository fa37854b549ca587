"""Accuracy at matched speedups (PruningBench compares methods at 2x, 3x, 4x).

Each seed's curve (top-1 against log2 speedup, in the order of its points) is interpolated
linearly at each common speedup inside its range; the mean and 95% interval are then taken over
seeds, so the seed-to-seed spread of both accuracy and speedup is carried into the interval. A
speedup outside a seed's measured range is not extrapolated (blank).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prunebench.metrics.declared import TOP1
from prunebench.report.aggregate import Curve, Group
from prunebench.report.stats import Estimate, accuracy_estimate
from prunebench.report.tables import Table, mean_ci, pct

MATCHED_SPEEDUPS = (2.0, 3.0, 4.0)


def interpolate_at(x: Sequence[float], y: Sequence[float], targets: Sequence[float]) -> list[float]:
    """y at each target x, linear in log2(x) between neighbouring points; nan outside [min x, max x]."""
    order = np.argsort(x)
    xs = np.log2(np.asarray(x, dtype=float)[order])
    ys = np.asarray(y, dtype=float)[order]
    found = []
    for target in targets:
        t = math.log2(target)
        found.append(float(np.interp(t, xs, ys)) if xs.size and xs[0] <= t <= xs[-1] else math.nan)
    return found


def matched(curve: Curve, targets: Sequence[float], measured: bool) -> list[Estimate | None]:
    """Per target: the estimate over seeds of top-1 interpolated at that speedup (None: no seed reaches it)."""
    points = curve.ordered()
    seeds = set.intersection(*(set(p.measured_speedup if measured else p.speedup) & set(p.top1) for p in points)) if points else set()
    per_seed = []
    for seed in sorted(seeds):
        x = [(p.measured_speedup if measured else p.speedup)[seed] for p in points]
        per_seed.append(interpolate_at(x, [p.top1[seed] for p in points], targets))
    found: list[Estimate | None] = []
    for i in range(len(targets)):
        values = [row[i] for row in per_seed if not math.isnan(row[i])]
        found.append(accuracy_estimate(values) if values else None)
    return found


def cell(e: Estimate | None) -> str:
    if e is None:
        return ""
    return pct(e.mean) if e.n < 2 else f"{mean_ci(e)} (n = {e.n})"


def common_speedups(group: Group, measured: bool) -> list[float]:
    """2x, 3x, 4x, then powers of two up to the largest speedup a point reached."""
    reached = [v for c in group.curves.values() for p in c.points.values()
               for v in (p.measured_speedup if measured else p.speedup).values()]
    largest = max(reached, default=0.0)
    targets = list(MATCHED_SPEEDUPS)
    while targets[-1] * 2 <= largest:
        targets.append(targets[-1] * 2)
    return targets


def matched_table(group: Group, measured: bool, targets: Sequence[float] | None = None) -> Table:
    kind = "measured" if measured else "theoretical"
    if targets is None:
        targets = common_speedups(group, measured)
    found = []
    for curve in group.sorted_curves():
        if measured and not any(p.measured_speedup for p in curve.points.values()):
            continue
        estimates = matched(curve, targets, measured)
        if any(e is not None for e in estimates):
            found.append((curve, estimates))
    reached = [i for i in range(len(targets)) if any(e[i] is not None for _, e in found)]  # no empty columns
    rows = [[curve.name, curve.setting or "-", *(cell(estimates[i]) for i in reached)] for curve, estimates in found]
    header = ["strategy", "setting", *(f"{targets[i]:g}x" for i in reached)]
    return Table(f"{group.title}: {TOP1.header()} at matched {kind} speedup (interpolated per seed, mean ± 95% half-width)",
                 header, rows)
