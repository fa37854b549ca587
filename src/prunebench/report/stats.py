"""Means with 95% confidence intervals (Student t; clipped to [0, 1] for accuracies), paired
differences, area under curves."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    mean: float
    std: float  # sample standard deviation (n - 1); nan for a single value
    n: int
    ci_low: float  # nan when n < 2: one seed gives no interval
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


@functools.cache
def t_quantile(df: int) -> float:
    """Student t's two-sided 95% quantile: a report asks it thousands of times for a few dfs
    (scipy's ppf costs about half a millisecond a call)."""
    from scipy import stats  # here, not at the top: `prunebench results` never needs scipy (1.4 s to import)

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def estimate(values: Sequence[float]) -> Estimate:
    data = np.asarray(values, dtype=float)
    n = data.size
    if n == 0:
        raise ValueError("no values")
    mean = float(data.mean())
    if n < 2:
        return Estimate(mean, math.nan, 1, math.nan, math.nan)
    std = float(data.std(ddof=1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Estimate(mean, std, n, mean - half, mean + half)


def accuracy_estimate(values: Sequence[float]) -> Estimate:
    """An estimate of a fraction (top-1): the Student-t interval clipped to [0, 1], since no
    accuracy lies outside it (with three seeds the unclipped band can run below 0%)."""
    e = estimate(values)
    if e.n < 2:
        return e
    return Estimate(e.mean, e.std, e.n, max(0.0, e.ci_low), min(1.0, e.ci_high))


def paired_difference(a: dict[int, float], b: dict[int, float]) -> Estimate | None:
    """Mean of a - b over the seeds both have (they share each seed's dense model)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return estimate([a[s] - b[s] for s in seeds])


def area_under_log2(levels: Sequence[float], values: Sequence[float]) -> float:
    """Mean of the curve over log2(compression) between the first and last level (trapezoids).

    Reads as 'average top-1 across the compression range', comparable between strategies
    measured at the same levels.
    """
    x = np.log2(np.asarray(levels, dtype=float))
    y = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(y[0])
    order = np.argsort(x)
    x, y = x[order], y[order]
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


@dataclass(frozen=True)
class PairedTest:
    difference: Estimate
    p: float  # two-sided paired t test of mean difference 0; nan for fewer than 2 seeds


def paired_test(a: dict[int, float], b: dict[int, float]) -> PairedTest | None:
    """The paired difference a - b over shared seeds and its two-sided t-test p-value."""
    diff = paired_difference(a, b)
    if diff is None:
        return None
    if diff.n < 2:
        return PairedTest(diff, math.nan)
    if diff.std == 0:  # every seed moved by the same amount: certain unless that amount is zero
        return PairedTest(diff, 1.0 if diff.mean == 0 else 0.0)
    from scipy import stats

    t = diff.mean / (diff.std / math.sqrt(diff.n))
    return PairedTest(diff, float(2 * stats.t.sf(abs(t), diff.n - 1)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control); nan entries stay nan and
    are not counted in the family."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))  # adjusted values never decrease
        adjusted[index] = running
    return adjusted
