"""A language-model comparison's figure and tables: perplexity against sparsity.

Perplexity is drawn on a log axis (it grows roughly exponentially as a model breaks down),
each curve's mean over calibration seeds with its 95% band, the dense model as a line. N:M
patterns fix their sparsity, so each is its own point (with its 95% interval) at the sparsity it
reached, labelled with its pattern. Paired differences are in log perplexity (the log of the
ratio of perplexities), per calibration seed: the runs of one seed prune the same pretrained
model, and a ratio means the same at perplexity 20 as at 200. For the same reason every mean over
seeds is a geometric mean with its 95% interval computed on log perplexity (an arithmetic interval
on perplexities that span orders of magnitude would reach below zero), and the paired verdicts are
Holm-corrected over the table's tests, as for classifiers.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence

import numpy as np

from prunebench.metrics.declared import (
    COMPRESSION, MEASURED_SPEEDUP, PERPLEXITY, PRE_FINETUNE_PERPLEXITY, SPARSITY,
)
from prunebench.record import TaskScore
from prunebench.report.aggregate import Group, Point
from prunebench.report.plots import curve_styles, plt, save
from prunebench.report.stats import Estimate, estimate, holm, paired_test
from prunebench.report.tables import ALPHA, Table, judged, verdict

LM_DEFINITIONS = (
    "Language models: sparsity = pruned / prunable weights (the Linear layers inside the decoder blocks); "
    "perplexity = exp(mean next-token negative log-likelihood) over the evaluation split's tokens in the windows "
    "of the runs' evaluation.protocol (papers: disjoint, the tail dropped), each token scored at most once; "
    "bands and intervals over calibration seeds, geometric. "
    f"{PERPLEXITY.direction.capitalize()} perplexity is better. Measured speedup = dense / pruned prefill time of the same tokens where a run timed it; a MAC ratio "
    "of unstructured or N:M zeros is not a speedup until a kernel skips them, so none is claimed without a timing."
)
NO_SPEEDUP = "no measured speedup"


def number(value: float) -> str:
    """Perplexity as a reader compares it: two decimals near the dense model, three significant
    digits once it has blown up (4.4e+08, not 440000000.000)."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.3g}"


def measured(point: Point) -> str:
    """The measured prefill speedup over seeds, or the words that say there is none."""
    return f"{estimate(list(point.measured_speedup.values())).mean:.2f}" if point.measured_speedup else NO_SPEEDUP


def interval(e: Estimate) -> str:
    return "n/a (1 seed)" if e.n < 2 else f"[{number(e.ci_low)}, {number(e.ci_high)}]"


def geometric(values: Sequence[float]) -> Estimate:
    """Geometric mean over seeds with the 95% interval of log perplexity mapped back (both
    positive); ``std`` is the sample std of log perplexity."""
    e = estimate([math.log(v) for v in values])
    return Estimate(math.exp(e.mean), e.std, e.n, math.exp(e.ci_low), math.exp(e.ci_high))


def mean_sparsity(point: Point) -> float:
    return estimate(list(point.sparsity.values())).mean


NM_LABEL_STEP = 10  # points between the labels of N:M patterns at one sparsity, drawn at their true sparsity


def perplexity_figure(group: Group) -> bytes:
    """Perplexity (log axis) against the sparsity reached, geometric mean and 95% band over seeds.

    One colour per strategy (its N:M points too, as squares), controls in gray and dashed; N:M
    patterns that reach the same sparsity are set a little apart and labelled. The y range follows
    the means, so a control's interval of many decades does not flatten the methods against the
    dense line (its whiskers are clipped at the frame)."""
    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = curve_styles(group)
    reached: list[float] = []
    means: list[float] = []
    patterns = sorted({p.level for c in group.curves.values() if c.target_kind == "nm" for p in c.points.values()})
    for curve in group.sorted_curves():
        style = styles[curve.label]
        points = sorted(curve.points.values(), key=mean_sparsity)
        estimates = [geometric(list(p.perplexity.values())) for p in points]
        mean = np.array([e.mean for e in estimates])
        low = np.array([e.ci_low for e in estimates])
        high = np.array([e.ci_high for e in estimates])
        scope = json.loads(curve.settings.get("prune.scope", '""'))
        label = f"{curve.strategy} ({scope}{', N:M' if curve.target_kind == 'nm' else ''})"
        means += list(mean)
        if curve.target_kind == "nm":  # fixed patterns: points, not a curve
            x = np.array([mean_sparsity(p) * 100 for p in points])  # where they are: 2:4 and 4:8 both at 50%
            reached += list(x)
            errors = np.nan_to_num(np.array([mean - low, high - mean]))
            ax.errorbar(x, mean, yerr=errors, fmt="s", markersize=5, capsize=3, color=style.color, label=label,
                        alpha=0.8)
            for xi, yi, point in zip(x, mean, points):  # the labels, not the points, are set apart
                ax.annotate(point.level, (xi, yi), textcoords="offset points", fontsize=7, color=style.color,
                            xytext=(6, 3 + NM_LABEL_STEP * patterns.index(point.level)))
            continue
        x = np.array([mean_sparsity(p) * 100 for p in points])
        reached += list(x)
        line = "--" if curve.role == "control" else "-"
        errors = np.nan_to_num(np.array([mean - low, high - mean]))
        ax.errorbar(x, mean, yerr=errors, fmt=line, marker="o", markersize=3, capsize=2, color=style.color, label=label)
        if len(x) > 1 and not np.isnan(low).all():
            ax.fill_between(x, low, high, color=style.color, alpha=0.18, linewidth=0)
    for entry in group.dense.values():
        if not entry.perplexity:
            continue
        dense = geometric(list(entry.perplexity.values())).mean
        means.append(dense)
        name = f"dense, {entry.setting}" if entry.setting else "dense"
        ax.axhline(dense, color="black", linestyle=":", linewidth=1, label=f"{name} ({dense:.2f})")
    if reached:  # a level is a few tenths of a percent off its target (zeros the model had): not a range to zoom to
        ax.set_xlim(max(0.0, min(reached) - 10), min(100.0, max(reached) + 10))
    ax.set_yscale("log")
    finite = [m for m in means if math.isfinite(m) and m > 0]
    if finite:
        ax.set_ylim(min(finite) / 2, max(finite) * 5)
    ax.set_xlabel(SPARSITY.axis_label())
    ax.set_ylabel(PERPLEXITY.axis_label())
    ax.set_title(f"{group.title}: perplexity vs sparsity (geometric mean over seeds, 95% CI)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return save(figure)


def levels_table(group: Group) -> Table:
    rows = []
    for dense in group.dense.values():
        if dense.perplexity:
            d = geometric(list(dense.perplexity.values()))
            rows.append(["dense", dense.setting or "-", "-", "0.0", "1.00", "1.00", "1.00", number(d.mean), "-",
                         number(d.mean), "-", "1", "-"])
    for curve in group.sorted_curves():
        for point in sorted(curve.points.values(), key=lambda p: (mean_sparsity(p), p.level)):
            e = geometric(list(point.perplexity.values()))
            pre = geometric(list(point.pre_perplexity.values()))
            rows.append([
                curve.strategy, curve.setting or "-", point.level, f"{mean_sparsity(point) * 100:.1f}",
                f"{point.mean_compression():.2f}", f"{point.mean_speedup():.2f}", measured(point), number(pre.mean), interval(pre),
                number(e.mean), number(e.std), str(e.n), interval(e),
            ])
    header = ["strategy", "setting", "target", SPARSITY.header(), COMPRESSION.label, "MAC ratio (not a speedup)",
              MEASURED_SPEEDUP.label, PRE_FINETUNE_PERPLEXITY.label, "95% CI", PERPLEXITY.label, "std of log", "n", "95% CI"]
    return Table(f"{group.title}: evaluation perplexity at each target (geometric means over seeds)", header, rows)


def log_ratio(values: dict[int, float]) -> dict[int, float]:
    return {seed: math.log(v) for seed, v in values.items()}


def paired_verdict(adjusted_p: float, mean_log_ratio: float, n: int) -> str:
    """What a reviewer may say of one paired test after Holm's correction (perplexity's declared direction)."""
    return judged(verdict(adjusted_p, mean_log_ratio, n), "a better", "a worse", PERPLEXITY)


def paired_table(group: Group) -> Table:
    """a / b per target as mean log(ppl_a / ppl_b) over the seeds both have, shown as the ratio
    exp(mean); between curves that differ only in strategy, scope and options. Verdicts are
    Holm-corrected over every test in the table; the intervals are per test, uncorrected."""
    tests = []
    for a, b in itertools.combinations(group.sorted_curves(), 2):
        if a.comparison() != b.comparison() or a.role == b.role == "control":
            continue
        if a.role == "control":
            a, b = b, a
        for level in sorted(set(a.points) & set(b.points)):
            test = paired_test(log_ratio(a.points[level].perplexity), log_ratio(b.points[level].perplexity))
            if test is not None:
                tests.append((a, b, level, test))
    adjusted = holm([t.p for *_, t in tests])
    rows = []
    for (a, b, level, t), q in zip(tests, adjusted):
        diff = t.difference
        ci = "n/a (1 seed)" if diff.n < 2 else f"[{math.exp(diff.ci_low):.3g}, {math.exp(diff.ci_high):.3g}]"
        rows.append([f"{a.label} / {b.label}", a.points[level].level, f"{math.exp(diff.mean):.3g}", str(diff.n), ci,
                     "n/a" if math.isnan(t.p) else f"{t.p:.3g}", "n/a" if math.isnan(q) else f"{q:.3g}",
                     paired_verdict(q, diff.mean, diff.n)])
    header = ["a / b", "target", "perplexity ratio (geometric mean)", "n", "95% CI (uncorrected)", "p (paired t on log)",
              "p (Holm)", f"verdict (Holm, {len(tests)} tests, {ALPHA:g} family-wise)"]
    return Table(f"{group.title}: paired perplexity ratios (per calibration seed)", header, rows)


def summary_table(group: Group) -> Table:
    """Per curve: geometric-mean perplexity over its levels, per seed, then mean and CI over seeds."""
    rows = []
    for curve in group.sorted_curves():
        points = list(curve.points.values())
        seeds = set.intersection(*(set(p.perplexity) for p in points)) if points else set()
        per_seed = [float(np.mean([math.log(p.perplexity[s]) for p in points])) for s in sorted(seeds)]
        if not per_seed:
            continue
        e = estimate(per_seed)
        ci = "n/a (1 seed)" if e.n < 2 else f"[{number(math.exp(e.ci_low))}, {number(math.exp(e.ci_high))}]"
        levels = ", ".join(p.level for p in sorted(points, key=mean_sparsity))
        rows.append([curve.strategy, curve.setting or "-", levels, number(math.exp(e.mean)), str(e.n), ci])
    header = ["strategy", "setting", "levels", f"geometric-mean {PERPLEXITY.label} over the levels", "n", "95% CI"]
    return Table(f"{group.title}: one number per curve", header, rows)


def lm_tables(group: Group) -> list[Table]:
    return [levels_table(group), paired_table(group), summary_table(group)]


# --- zero-shot tasks (evaluation.tasks) ---------------------------------------------------------

TASKS_NOTE = (
    "Zero-shot tasks: multiple-choice accuracy by log-likelihood as lm-eval scores it (acc: the most likely "
    "choice; acc_norm: log-likelihood divided by the choice's length in characters), on the same items for "
    "every model. Intervals are Wilson 95% over the items (for several seeds: of the mean over seeds, so "
    "they show item sampling, not seed spread); paired tests are McNemar's exact test on the items of the "
    "lowest seed both runs share, Holm-corrected over the table."
)


def task_order(names: set[str]) -> list[str]:
    from prunebench.spec.language_model import TASK_NAMES

    return sorted(names, key=lambda t: (TASK_NAMES.index(t) if t in TASK_NAMES else len(TASK_NAMES), t))


def percent_interval(mean: float, n: int) -> str:
    from prunebench.metrics.choice import wilson

    low, high = wilson(round(mean * n), n)
    return f"[{low * 100:.1f}, {high * 100:.1f}]"


def task_row(scores: dict[int, TaskScore]) -> list[str]:
    n = next(iter(scores.values())).n
    acc = float(np.mean([s.acc for s in scores.values()]))
    norm = float(np.mean([s.acc_norm for s in scores.values()]))
    return [str(n), str(len(scores)), f"{acc * 100:.1f}", percent_interval(acc, n), f"{norm * 100:.1f}",
            percent_interval(norm, n)]


def tasks_table(group: Group) -> Table | None:
    """Each task's accuracy per strategy and target (means over seeds); None without task scores."""
    rows = []
    for dense in group.dense.values():
        for task in task_order(set(dense.tasks)):
            rows.append(["dense", dense.setting or "-", "-", "0.0", task, *task_row(dense.tasks[task])])
    for curve in group.sorted_curves():
        for point in sorted(curve.points.values(), key=lambda p: (mean_sparsity(p), p.level)):
            for task in task_order(set(point.tasks)):
                rows.append([curve.strategy, curve.setting or "-", point.level, f"{mean_sparsity(point) * 100:.1f}",
                             task, *task_row(point.tasks[task])])
    if not rows:
        return None
    header = ["strategy", "setting", "target", SPARSITY.header(), "task", "items", "seeds", "acc (%)", "95% CI (Wilson)",
              "acc_norm (%)", "95% CI (Wilson)"]
    return Table(f"{group.title}: zero-shot task accuracy (means over seeds)", header, rows)


def tasks_paired_table(group: Group) -> Table | None:
    """McNemar's exact test between two curves of one comparison at each shared target and task,
    on the items of the lowest seed both scored with the same items; None without any pair."""
    from prunebench.metrics.choice import mcnemar

    tests = []
    for a, b in itertools.combinations(group.sorted_curves(), 2):
        if a.comparison() != b.comparison() or a.role == b.role == "control":
            continue
        for level in sorted(set(a.points) & set(b.points)):
            pa, pb = a.points[level], b.points[level]
            for task in task_order(set(pa.tasks) & set(pb.tasks)):
                seeds = sorted(s for s in set(pa.tasks[task]) & set(pb.tasks[task])
                               if pa.tasks[task][s].items_sha256 == pb.tasks[task][s].items_sha256)
                if not seeds:
                    continue
                sa, sb = pa.tasks[task][seeds[0]], pb.tasks[task][seeds[0]]
                test = mcnemar([c == "1" for c in sa.correct], [c == "1" for c in sb.correct])
                tests.append((a, b, pa.level, task, seeds[0], sa, sb, test))
    if not tests:
        return None
    adjusted = holm([t.p for *_, t in tests])
    rows = []
    for (a, b, level, task, seed, sa, sb, t), q in zip(tests, adjusted):
        if q >= ALPHA:
            said = "no difference shown"
        else:
            said = "a better" if t.only_a > t.only_b else "b better"
        rows.append([f"{a.label} / {b.label}", level, task, str(seed), str(t.n), f"{sa.acc * 100:.1f}",
                     f"{sb.acc * 100:.1f}", str(t.only_a), str(t.only_b), f"{t.p:.3g}", f"{q:.3g}", said])
    header = ["a / b", "target", "task", "seed", "items", "acc a (%)", "acc b (%)", "only a right", "only b right",
              "p (exact McNemar)", "p (Holm)", f"verdict (Holm, {len(tests)} tests, {ALPHA:g} family-wise)"]
    return Table(f"{group.title}: paired task accuracy (acc, the same items)", header, rows)


def task_tables(group: Group) -> list[tuple[str, Table]]:
    """(file kind, table) for the zero-shot tasks, where the runs scored any."""
    found = [("tasks", tasks_table(group)), ("tasks-paired", tasks_paired_table(group))]
    return [(kind, table) for kind, table in found if table is not None]


__all__ = ["LM_DEFINITIONS", "TASKS_NOTE", "lm_tables", "perplexity_figure", "task_tables"]
