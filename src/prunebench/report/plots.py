"""Accuracy-versus-compression and -speedup figures (matplotlib, no display needed)."""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matplotlib.transforms import Bbox  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

from prunebench.metrics.declared import COMPRESSION, MEASURED_SPEEDUP, THEORETICAL_SPEEDUP, TOP1  # noqa: E402
from prunebench.report.aggregate import BEST, Curve, Group, Point  # noqa: E402
from prunebench.report.literature import PublishedPoint  # noqa: E402
from prunebench.report.stats import accuracy_estimate, estimate  # noqa: E402


def save(figure: plt.Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


SCOPE_LINES = {"global": "-", "layer": "--"}
CONTROL_LINES = {"layer-shuffle": ":", "reinit": "-."}  # a sanity control: its method's colour
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CONTROL_COLORS = ("#555555", "#999999", "#333333", "#bbbbbb")


@dataclass(frozen=True)
class Style:
    color: str
    linestyle: str
    marker: str

    def kwargs(self) -> dict[str, str]:
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker}


def curve_styles(group: Group) -> dict[str, Style]:
    """Curve label -> style: one colour per strategy (grays for controls), the line style says the
    scope (solid global, dashed layer), the marker tells apart curves that differ in anything else."""
    curves = group.sorted_curves()
    methods = sorted({c.strategy for c in curves if c.role != "control" or c.is_sanity_control})
    controls = sorted({c.strategy for c in curves if c.role == "control"} - set(methods))
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
    colors = {name: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, name in enumerate(methods)}
    colors.update({name: CONTROL_COLORS[i % len(CONTROL_COLORS)] for i, name in enumerate(controls)})
    styles = {}
    seen: dict[tuple[str, str], int] = {}
    for curve in curves:
        key = (curve.strategy, curve.scope, curve.control or "")
        index = seen.setdefault(key, 0)
        seen[key] = index + 1
        line = CONTROL_LINES.get(curve.control or "", SCOPE_LINES.get(curve.scope, ":"))
        styles[curve.label] = Style(colors[curve.strategy], line, MARKERS[index % len(MARKERS)])
    return styles


def ratio_label(value: float, _position: object = None) -> str:
    return f"{value:g}x"


def level_ticks(ax: plt.Axes, values: list[float]) -> None:
    """x ticks at exactly ``values`` (the levels run), labelled '16x'; a tick too close to the
    previous one on the log axis is dropped so labels do not overlap."""
    kept: list[float] = []
    for value in sorted(set(round(v, 2) for v in values if v > 0)):
        if not kept or value / kept[-1] >= 1.18:
            kept.append(value)
    if kept:
        ax.set_xticks(kept)
    ax.xaxis.set_major_formatter(FuncFormatter(ratio_label))
    ax.xaxis.set_minor_locator(NullLocator())


def readable_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """A log axis labelled at 1, 2 and 5 of each decade as plain numbers (0.5, 1, 2, 50), not
    only at powers of ten written as 10^0: a short range then still has several labels."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def tick_values(group: Group, axis: str) -> list[float]:
    """The levels run on ``axis`` where curves target it; elsewhere (where runs landed: 2.02x,
    4.1x, 8.46x) the powers of two across that range, which read as round numbers."""
    targets, reached = [], []
    for curve in group.curves.values():
        for point in curve.points.values():
            if curve.target_kind == axis:
                targets.append(float(point.target.value))
            else:
                reached.append(point.mean_compression() if axis == "compression" else point.mean_speedup())
    return targets + powers_of_two(reached)


def powers_of_two(values: list[float]) -> list[float]:
    """1, 2, 4, ... from the power nearest the smallest value to the one nearest the largest."""
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    if not finite:
        return []
    low, high = round(math.log2(min(finite))), round(math.log2(max(finite)))
    return [2.0 ** k for k in range(low, high + 1)]


def x_of(point: Point, axis: str) -> float:
    return point.mean_compression() if axis == "compression" else point.mean_speedup()


def x_label(axis: str) -> str:
    return (COMPRESSION if axis == "compression" else THEORETICAL_SPEEDUP).axis_label()


def draw_band(ax: plt.Axes, curve: Curve, style: Style, values: list[tuple[float, dict[int, float]]]) -> None:
    """Mean over seeds with its 95% CI band (clipped to [0, 100]), at the given (x, seed -> top-1) points."""
    values = [(x, v) for x, v in values if v]
    if not values:
        return
    estimates = [accuracy_estimate(list(v.values())) for _, v in values]
    x = np.array([x for x, _ in values])
    mean = np.array([e.mean for e in estimates]) * 100
    low = np.array([e.ci_low for e in estimates]) * 100
    high = np.array([e.ci_high for e in estimates]) * 100
    ax.plot(x, mean, markersize=3, label=curve.label, **style.kwargs())
    if not np.isnan(low).all():
        ax.fill_between(x, low, high, color=style.color, alpha=0.15, linewidth=0)


def curve_figure(group: Group, axis: str, published: list[PublishedPoint]) -> bytes:
    """top-1 against ``axis`` ('compression' or 'speedup'), log2 x axis, mean and 95% CI band."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    for curve in group.sorted_curves():
        draw_band(ax, curve, styles[curve.label], [(x_of(p, axis), p.top1) for p in curve.ordered()])
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
    level_ticks(ax, tick_values(group, axis))
    ax.set_xlabel(x_label(axis))
    ax.set_ylabel(TOP1.axis_label())
    ax.set_title(f"{group.title}: top-1 vs {axis} (mean over seeds, 95% CI)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return save(figure)


def dense_by_seed(group: Group, curve: Curve) -> dict[int, float]:
    """seed -> the dense top-1 the curve's runs pruned (the group's dense results of its recipe)."""
    entries = list(group.dense.values())
    if len(entries) > 1:  # several dense recipes: the one whose settings the curve shares
        entries = [d for d in entries if all(curve.settings.get(k) == v for k, v in d.settings.items()
                                             if k != "checkpoint_sha256")] or entries
    return entries[0].top1 if entries else {}


def drop_figure(group: Group) -> bytes:
    """top-1 minus the dense top-1 of the same seed against compression (ShrinkBench's
    meta-analysis axis): every run a point at the compression it reached, the mean a line."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    for curve in group.sorted_curves():
        style, dense = styles[curve.label], dense_by_seed(group, curve)
        xs, means = [], []
        for point in curve.ordered():
            seeds = [s for s in point.top1 if s in dense]
            if not seeds:
                continue
            drops = [(point.top1[s] - dense[s]) * 100 for s in seeds]
            ax.scatter([point.compression[s] for s in seeds], drops, color=style.color, marker=style.marker, s=14, alpha=0.5,
                       linewidths=0)
            xs.append(point.mean_compression())
            means.append(sum(drops) / len(drops))
        if xs:
            ax.plot(xs, means, label=curve.label, markersize=0, color=style.color, linestyle=style.linestyle)
    ax.axhline(0, color="black", linestyle=":", linewidth=1, label="dense (same seed)")
    return finish_compression_axes(figure, ax, group, "top-1 change from dense (points)",
                                   f"{group.title}: accuracy change from dense (each seed a point, line: mean)")


def finish_compression_axes(figure: plt.Figure, ax: plt.Axes, group: Group, ylabel: str, title: str) -> bytes:
    """The common end of a figure over compression: log2 axis ticked where runs landed, labels,
    grid, legend; the PNG bytes."""
    ax.set_xscale("log", base=2)
    level_ticks(ax, tick_values(group, "compression"))
    ax.set_xlabel(x_label("compression"))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return save(figure)


def pre_retrain_figure(group: Group) -> bytes:
    """top-1 right after pruning, before any retraining: how much damage retraining repairs."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    for curve in group.sorted_curves():
        draw_band(ax, curve, styles[curve.label], [(p.mean_compression(), p.pre_top1) for p in curve.ordered()])
    for entry in group.dense.values():
        dense = estimate(list(entry.top1.values())).mean * 100
        ax.axhline(dense, color="black", linestyle=":", linewidth=1, label=f"dense ({dense:.2f}%)")
    return finish_compression_axes(figure, ax, group, f"test {TOP1.label} before retraining ({TOP1.shown_unit})",
                                   f"{group.title}: top-1 right after pruning (mean over seeds, 95% CI)")


def density_level(group: Group, wanted: float | None = None) -> str | None:
    """The point key (JSON target value) of the compression level the per-layer density figure
    shows: ``wanted`` if run, else the level run by the most curves, nearest 16x on a log scale."""
    counts: dict[str, int] = {}
    values: dict[str, float] = {}
    for curve in group.curves.values():
        if curve.target_kind != "compression":
            continue
        for key, point in curve.points.items():
            if point.layer_density:
                counts[key] = counts.get(key, 0) + 1
                values[key] = float(point.target.value)
    if not counts:
        return None
    chosen = [k for k in counts if wanted is not None and values[k] == wanted]
    if chosen:
        return chosen[0]
    most = max(counts.values())
    return min((k for k, n in counts.items() if n == most), key=lambda k: abs(np.log2(values[k]) - 4))


def layer_density_figure(group: Group, level: str) -> bytes:
    """Kept fraction of each prunable tensor at one compression level, one bar per curve."""
    curves = [c for c in group.sorted_curves()
              if c.target_kind == "compression" and level in c.points and c.points[level].layer_density]
    layers = list(dict.fromkeys(name for c in curves for d in c.points[level].layer_density.values() for name in d))
    styles = curve_styles(group)
    figure, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(layers) * max(1, len(curves)) / 3), 4.5), dpi=110)
    width = 0.8 / max(1, len(curves))
    for index, curve in enumerate(curves):
        densities = curve.points[level].layer_density.values()
        means = [float(np.mean([d[name] for d in densities if name in d])) * 100 for name in layers]
        style = styles[curve.label]
        ax.bar(np.arange(len(layers)) + index * width - 0.4 + width / 2, means, width, color=style.color,
               hatch="//" if style.linestyle == "--" else None, edgecolor="white", label=curve.label)
    ax.set_xticks(np.arange(len(layers)))
    ax.set_xticklabels(layers, rotation=30, ha="right", fontsize=7)
    ax.set_yscale("log")
    readable_log_ticks(ax.yaxis)
    ax.set_ylabel("weights kept (%, log scale)")
    label = curves[0].points[level].level if curves else level
    ax.set_title(f"{group.title}: per-layer density at {label} (mean over seeds)", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save(figure)


def measured_speedup_figure(group: Group) -> bytes:
    """Measured against theoretical speedup, with the y = x line a perfect runtime would follow."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    largest = 1.0
    keys = form_keys(group)
    markers = dict(zip([k for k in keys if k[1] != "eager"], itertools.cycle(FORM_MARKERS)))
    for curve in group.sorted_curves():
        for key in keys:
            points = [p for p in curve.ordered() if p.form_latency.get(key)]
            if not points:
                continue
            x = [p.mean_speedup() for p in points]
            y = [estimate([t[0] for t in p.form_latency[key].values()]).mean for p in points]
            largest = max(largest, *x, *y)
            style = {**styles[curve.label].kwargs(), **({"marker": markers[key], "markersize": 6} if key in markers else {})}
            label = curve.label if len(keys) == 1 else f"{curve.label} ({key[0]}, {key[1]})"
            ax.plot(x, y, **{"markersize": 3, **style}, label=label)
    ax.plot([1, largest], [1, largest], color="black", linestyle=":", linewidth=1, label="y = x")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    for which in ("x", "y"):  # labelled '4x', not '2^2'
        (ax.xaxis if which == "x" else ax.yaxis).set_major_formatter(FuncFormatter(ratio_label))
    ax.set_xlabel(THEORETICAL_SPEEDUP.axis_label())
    ax.set_ylabel(MEASURED_SPEEDUP.axis_label())
    ax.set_title(f"{group.title}: measured vs theoretical speedup\n{'; '.join(sorted(group.latency_setups))}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save(figure)


FORM_MARKERS = ("x", "+", "1", "2", "3", "4")  # deployment forms: line markers beside the eager form's filled ones


def form_keys(group: Group) -> list[tuple[str, str]]:
    """Every (runtime, form) the group's runs timed: eager forms first, each model's fastest last."""
    keys = {k for c in group.curves.values() for p in c.points.values() for k in p.form_latency}
    return sorted(keys, key=lambda k: (k == BEST, k[1] != "eager", k))


def latency_figure(group: Group) -> bytes:
    """top-1 against measured latency of the pruned model."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    for curve in group.sorted_curves():
        points = [p for p in curve.ordered() if p.latency_ms]
        if not points:
            continue
        x = [estimate(list(p.latency_ms.values())).mean for p in points]
        y = [p.top1_estimate().mean * 100 for p in points]
        ax.plot(x, y, markersize=3, label=curve.label, **styles[curve.label].kwargs())
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel(TOP1.axis_label())
    ax.set_title(f"{group.title}: top-1 vs measured latency\n{'; '.join(sorted(group.latency_setups))}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return save(figure)


def jsv_name(methods: set[str]) -> str:
    """What the trainability axis shows: the exact mean JSV, or the sketch's approximate top-K mean."""
    names = []
    if "exact" in methods:
        names.append("mean input-output Jacobian singular value (jsv_mean)")
    if methods - {"exact"}:
        names.append("mean of the approximate top-32 Jacobian singular values (jsv_top32_mean_approx)")
    return " / ".join(names) or "mean input-output Jacobian singular value"


def label_without_overlap(figure: plt.Figure, ax: plt.Axes, labels: list[tuple[float, float, str]]) -> None:
    """Write each point's label beside it unless it would overlap one already written: where
    curves cross or bunch up, one label stands for the cluster instead of an unreadable pile.
    Call it last: the figure is laid out first, so the boxes compared are those drawn."""
    figure.tight_layout()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    placed: list[Bbox] = []
    for x, y, text in labels:
        label = ax.annotate(text, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        box = label.get_window_extent(renderer).expanded(1.1, 1.2)
        if any(box.overlaps(other) for other in placed):
            label.remove()
        else:
            placed.append(box)


def trainability_figure(group: Group) -> bytes:
    """Final top-1 against the mean Jacobian singular value right after pruning, one marker per
    level (mean over seeds), joined in the order of compression: does damage predict the outcome?"""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    labels: list[tuple[float, float, str]] = []
    for curve in group.sorted_curves():
        points = [p for p in curve.ordered() if p.jsv_mean]
        if not points:
            continue
        x = [estimate(list(p.jsv_mean.values())).mean for p in points]
        y = [p.top1_estimate().mean * 100 for p in points]
        ax.plot(x, y, markersize=4, label=curve.label, **styles[curve.label].kwargs())
        labels += [(xi, yi, p.level) for xi, yi, p in zip(x, y, points)]
    ax.set_xscale("log")
    readable_log_ticks(ax.xaxis)
    ax.set_xlabel(f"{jsv_name(group.jsv_methods)} right after pruning ({', '.join(sorted(group.jsv_methods))})")
    ax.set_ylabel(f"test {TOP1.label} after retraining ({TOP1.shown_unit})")
    ax.set_title(f"{group.title}: final top-1 vs trainability after pruning", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    label_without_overlap(figure, ax, labels)
    return save(figure)


def measured_curve_figure(group: Group) -> bytes:
    """top-1 against measured speedup (dense / pruned latency): the comparison at equal real speed."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    ticks = []
    for curve in group.sorted_curves():
        points = [p for p in curve.ordered() if p.measured_speedup]
        x = [estimate(list(p.measured_speedup.values())).mean for p in points]
        ticks += x
        draw_band(ax, curve, styles[curve.label], [(xi, p.top1) for xi, p in zip(x, points)])
    ax.set_xscale("log", base=2)
    level_ticks(ax, ticks)
    ax.set_xlabel(MEASURED_SPEEDUP.axis_label())
    ax.set_ylabel(TOP1.axis_label())
    ax.set_title(f"{group.title}: top-1 vs measured speedup\n{'; '.join(sorted(group.latency_setups))}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return save(figure)
