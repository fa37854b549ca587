"""Accuracy-versus-compression and -speedup figures (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from prunebench.report.aggregate import Group  # noqa: E402
from prunebench.report.literature import PublishedPoint  # noqa: E402
from prunebench.report.stats import estimate  # noqa: E402


def save(figure: plt.Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def curve_figure(group: Group, axis: str, published: list[PublishedPoint]) -> bytes:
    """top-1 against ``axis`` ('compression' or 'speedup'), log2 x axis, mean and 95% CI band."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for curve in group.sorted_curves():
        points = curve.ordered()
        x = np.array([p.mean_compression() if axis == "compression" else p.mean_speedup() for p in points])
        estimates = [p.top1_estimate() for p in points]
        mean = np.array([e.mean for e in estimates]) * 100
        low = np.array([e.ci_low for e in estimates]) * 100
        high = np.array([e.ci_high for e in estimates]) * 100
        style = "--" if curve.role == "control" else "-"
        (line,) = ax.plot(x, mean, style, marker="o", markersize=3, label=curve.label)
        if not np.isnan(low).all():
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
    for entry in group.dense.values():
        dense = estimate(list(entry.top1.values())).mean * 100
        name = f"dense, {entry.setting}" if entry.setting else "dense"
        ax.axhline(dense, color="black", linestyle=":", linewidth=1, label=f"{name} ({dense:.2f}%)")
    shown = [p for p in published if (p.compression if axis == "compression" else p.speedup)]
    if shown:
        ax.scatter(
            [p.compression if axis == "compression" else p.speedup for p in shown], [p.top1 * 100 for p in shown],
            marker="x", color="gray", label="published (ShrinkBench table)", zorder=3,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio (total / nonzero parameters)" if axis == "compression" else "theoretical speedup (dense MACs / effective MACs)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{group.title}: top-1 vs {axis} (mean over seeds, 95% CI)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return save(figure)


def measured_speedup_figure(group: Group) -> bytes:
    """Measured against theoretical speedup, with the y = x line a perfect runtime would follow."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    largest = 1.0
    for curve in group.sorted_curves():
        points = [p for p in curve.ordered() if p.measured_speedup]
        if not points:
            continue
        x = [p.mean_speedup() for p in points]
        y = [estimate(list(p.measured_speedup.values())).mean for p in points]
        largest = max(largest, *x, *y)
        ax.plot(x, y, marker="o", markersize=3, label=curve.label)
    ax.plot([1, largest], [1, largest], color="black", linestyle=":", linewidth=1, label="y = x")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("theoretical speedup (dense MACs / effective MACs)")
    ax.set_ylabel("measured speedup (dense / pruned latency)")
    ax.set_title(f"{group.title}: measured vs theoretical speedup\n{'; '.join(sorted(group.latency_setups))}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save(figure)


def latency_figure(group: Group) -> bytes:
    """top-1 against measured latency of the pruned model."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for curve in group.sorted_curves():
        points = [p for p in curve.ordered() if p.latency_ms]
        if not points:
            continue
        x = [estimate(list(p.latency_ms.values())).mean for p in points]
        y = [p.top1_estimate().mean * 100 for p in points]
        ax.plot(x, y, marker="o", markersize=3, label=curve.label)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{group.title}: top-1 vs measured latency\n{'; '.join(sorted(group.latency_setups))}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return save(figure)
