"""Tables of mean, std and n at each level; paired differences; one summary number per curve."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from prunebench.metrics.declared import (
    COMPRESSION, DENSE_MS, MEASURED_SPEEDUP, Metric, PRUNE_PEAK_MB, PRUNE_S, PRUNED_MS, QUANTIZED_TOP1, RETRAIN_S,
    STORAGE_COMPRESSION, THEORETICAL_SPEEDUP, TOP1,
)
from prunebench.report.aggregate import BEST, Curve, Group, Point
from prunebench.report.stats import (
    Estimate, PairedTest, accuracy_estimate, area_under_log2, estimate, holm, paired_test,
)


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"| {' | '.join(self.header)} |", f"|{'|'.join(' --- ' for _ in self.header)}|"]
        lines += [f"| {' | '.join(r)} |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        def quote(v: str) -> str:
            return f'"{v}"' if "," in v or '"' in v else v

        return "\n".join(",".join(quote(v) for v in line) for line in [self.header, *self.rows]) + "\n"

    def latex(self) -> str:
        def escape(v: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("%", r"\%"), ("_", r"\_"), ("&", r"\&"), ("±", r"$\pm$")):
                v = v.replace(a, b)
            return v

        body = "\n".join(" & ".join(escape(v) for v in r) + r" \\" for r in self.rows)
        return (
            f"% {self.title}\n\\begin{{tabular}}{{{'l' * 2 + 'r' * (len(self.header) - 2)}}}\n\\hline\n"
            + " & ".join(escape(h) for h in self.header) + " \\\\\n\\hline\n" + body + "\n\\hline\n\\end{tabular}\n"
        )

    def html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 100:.2f}"


def ci(e: Estimate) -> str:
    return "n/a (1 seed)" if e.n < 2 else f"[{pct(e.ci_low)}, {pct(e.ci_high)}]"


def levels_table(group: Group) -> Table:
    """Where some runs have a compress stage, their storage compression and quantized top-1 are
    shown beside the parameter compression (a dash for the runs without one)."""
    stored = any(p.storage_compression for c in group.curves.values() for p in c.points.values())
    rows = []
    for dense in group.dense.values():
        d = accuracy_estimate(list(dense.top1.values()))
        storage = ["1.00", "-"] if stored else []
        rows.append(["dense", dense.setting or "-", "-", "1.00", *storage, "1.00", pct(d.mean), pct(d.std), str(d.n), ci(d)])
    for curve in group.sorted_curves():
        for point in curve.ordered():
            e = point.top1_estimate()
            storage = []
            if stored and point.storage_compression:
                storage = [f"{estimate(list(point.storage_compression.values())).mean:.2f}",
                           pct(estimate(list(point.quantized_top1.values())).mean)]
            elif stored:
                storage = ["-", "-"]
            rows.append([
                curve.name, curve.setting or "-", point.level, f"{point.mean_compression():.2f}", *storage,
                f"{point.mean_speedup():.2f}", pct(e.mean), pct(e.std), str(e.n), ci(e),
            ])
    storage_header = [STORAGE_COMPRESSION.label, QUANTIZED_TOP1.header()] if stored else []
    header = ["strategy", "setting", "target", COMPRESSION.label, *storage_header, THEORETICAL_SPEEDUP.label,
              TOP1.header("mean"), "std", "n", "95% CI"]
    return Table(f"{group.title}: test {TOP1.label} at each target", header, rows)


ALPHA = 0.05  # family-wise error rate of the paired tests


def verdict(adjusted_p: float, mean: float, n: int) -> str:
    """What a reviewer may say about one paired test after Holm's correction."""
    if math.isnan(adjusted_p):
        return f"not tested (n = {n})"
    if adjusted_p < ALPHA:
        return "a > b" if mean > 0 else "a < b"  # a sign, not a judgement: the caller's metric says which is better
    return f"no significant difference (n = {n})"


def judged(text: str, a_better: str, b_better: str, metric: Metric = TOP1) -> str:
    """A verdict's sign (``a > b``) in words, by which way ``metric`` is better."""
    greater, smaller = (a_better, b_better) if metric.better(1.0) else (b_better, a_better)
    return text.replace("a > b", greater).replace("a < b", smaller)


def p_value(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"


REFERENCE = "magnitude"  # the field's default method: every other method is asked whether it beats it
RANDOM = "random"  # the random-pruning control (prunebench.plan.controls)


def comparable_pairs(group: Group) -> list[tuple[Curve, Curve]]:
    """(a, b) for every two curves that differ only in strategy, scope and options (so the same
    recipe, schedule, structure, target kind); a control is always b."""
    found = []
    for a, b in itertools.combinations(group.sorted_curves(), 2):
        if a.comparison() != b.comparison() or a.role == b.role == "control":
            continue
        found.append((b, a) if a.role == "control" else (a, b))
    return found


def planned(a: Curve, b: Curve) -> bool:
    """The pre-specified comparisons: a method against the random control, and a method other
    than magnitude against magnitude. Both are fixed before any result is seen."""
    if a.role != "method":
        return False
    if b.role == "control":
        return b.control == RANDOM
    return b.strategy == REFERENCE and a.strategy != REFERENCE


Test = tuple[Curve, Curve, str, PairedTest]


def level_tests(a: Curve, b: Curve, values: Callable[[Point], dict[int, float]]) -> list[Test]:
    """a - b at every level both ran, by the compression a reached."""
    tests = []
    for level in sorted(set(a.points) & set(b.points), key=lambda t: a.points[t].mean_compression()):
        test = paired_test(values(a.points[level]), values(b.points[level]))
        if test is not None:
            tests.append((a, b, level, test))
    return tests


def paired_tests(group: Group, exploratory: bool = False,
                 values: Callable[[Point], dict[int, float]] = lambda p: p.top1) -> list[tuple[Test, float]]:
    """Each test with its Holm-adjusted p.

    Planned (the default): each pre-specified pair is its own family, Holm over its levels, so a
    verdict on magnitude against random does not weaken as more methods join the sweep.
    Exploratory: every comparable pair, one Holm family over all of them."""
    pairs = [(a, b) for a, b in comparable_pairs(group) if exploratory or planned(a, b)]
    families = [[t for a, b in pairs for t in level_tests(a, b, values)]] if exploratory else [
        level_tests(a, b, values) for a, b in pairs]
    return [(t, q) for family in families for t, q in zip(family, holm([t[3].p for t in family]))]


def family_text(group: Group, exploratory: bool) -> str:
    """The family the verdicts control, as the page states it."""
    if exploratory:
        return f"every pair of strategies, Holm over all {len(paired_tests(group, True))} tests"
    return (f"each method against the {RANDOM} control and against {REFERENCE} at each level; "
            f"Holm over each pair's levels, {ALPHA:g} family-wise per pair")


def paired_table(group: Group, exploratory: bool = False) -> Table:
    """a - b per target, paired across seeds (see ``paired_tests`` for which pairs and families);
    the 95% intervals are per test, uncorrected."""
    tests = paired_tests(group, exploratory)
    rows = [
        [f"{a.label} - {b.label}", a.points[level].level, pct(t.difference.mean), str(t.difference.n),
         ci(t.difference), p_value(t.p), p_value(q), verdict(q, t.difference.mean, t.difference.n)]
        for (a, b, level, t), q in tests
    ]
    header = ["a - b", "target", "mean difference (points)", "n", "95% CI (uncorrected)", "p (paired t)",
              "p (Holm)", f"verdict (Holm, {ALPHA:g} family-wise)"]
    kind = "every pair, exploratory" if exploratory else "planned comparisons"
    return Table(f"{group.title}: paired differences in {TOP1.label}, {kind} ({family_text(group, exploratory)})", header, rows)


def area_per_seed(curve: Curve) -> dict[int, float]:
    """Seed -> mean top-1 over the log2-compression range, for the seeds every level has.

    x is the target ratio for compression targets, the reached compression for the other kinds."""
    points = curve.ordered()
    seeds = set.intersection(*(set(p.top1) for p in points)) if points else set()
    by_target = curve.target_kind == "compression"
    return {
        s: area_under_log2([float(p.target.value) if by_target else p.compression[s] for p in points],
                           [p.top1[s] for p in points])
        for s in sorted(seeds)
    }


def summary_table(group: Group) -> Table:
    """Mean top-1 over the log2-compression range, per seed, then mean and CI over seeds."""
    rows = []
    for curve in group.sorted_curves():
        points = curve.ordered()
        by_target = curve.target_kind == "compression"
        per_seed = list(area_per_seed(curve).values())
        if not per_seed:
            continue
        e = accuracy_estimate(per_seed)
        span = f"{points[0].level}-{points[-1].level}" if by_target else f"{points[0].mean_compression():.3g}-{points[-1].mean_compression():.3g}x"
        rows.append([curve.name, curve.setting or "-", span, pct(e.mean), str(e.n), ci(e)])
    header = ["strategy", "setting", "levels", f"area under {TOP1.label} vs log2 {COMPRESSION.label} ({TOP1.shown_unit})", "n", "95% CI"]
    return Table(f"{group.title}: one number per curve", header, rows)


def sanity_tests(group: Group) -> list[tuple[Curve, Curve, str, PairedTest, float]]:
    """(method, control, level, paired test method - control, Holm-adjusted p) for every sanity
    control at every level both ran; one Holm family, as in the report's controls table."""
    tests = []
    for control in group.sorted_curves():
        method = group.source_of(control)
        if method is None:
            continue
        for level in sorted(set(method.points) & set(control.points), key=lambda t: method.points[t].mean_compression()):
            test = paired_test(method.points[level].top1, control.points[level].top1)
            if test is not None:
                tests.append((method, control, level, test))
    adjusted = holm([t.p for *_, t in tests])
    return [(m, c, level, t, q) for (m, c, level, t), q in zip(tests, adjusted)]


def controls_table(group: Group) -> Table:
    """Each method against its own sanity controls (layer-shuffle, reinit) at every level, paired
    across seeds; Holm-corrected over this table's tests. A method that does not beat its
    layer-shuffled mask has learned a per-layer density, not which weights to keep."""
    tests = sanity_tests(group)
    rows = [
        [method.label, control.control or "", method.points[level].level, pct(method.points[level].top1_estimate().mean),
         pct(control.points[level].top1_estimate().mean), pct(t.difference.mean), str(t.difference.n), ci(t.difference),
         p_value(t.p), p_value(q), judged(verdict(q, t.difference.mean, t.difference.n), "method better", "control better")]
        for method, control, level, t, q in tests
    ]
    header = ["method", "control", "target", f"method {TOP1.header()}", f"control {TOP1.header()}", "method - control (points)", "n",
              "95% CI (uncorrected)", "p (paired t)", "p (Holm)", f"verdict (Holm, {len(tests)} tests, {ALPHA:g} family-wise)"]
    return Table(f"{group.title}: each method against its own sanity controls", header, rows)


def cost_table(group: Group) -> Table:
    """Per curve, over all its runs: seconds of pruning (scoring and selection) and of retraining,
    mean and largest, and the largest pruning peak memory."""
    rows = []
    for curve in group.sorted_curves():
        points = curve.ordered()
        prune = [v for p in points for v in p.prune_s.values()]
        retrain = [v for p in points for v in p.retrain_s.values()]
        peaks = [v for p in points for v in p.prune_peak_mb.values()]
        if not prune:
            continue
        rows.append([
            curve.name, curve.setting or "-", str(len(prune)), f"{sum(prune) / len(prune):.3g}", f"{max(prune):.3g}",
            f"{sum(retrain) / len(retrain):.3g}", f"{max(peaks):.3g}" if peaks else "n/a",
        ])
    measured = ", ".join(sorted(m for m in group.peak_methods if m)) or "not recorded"
    header = ["strategy", "setting", "runs", f"{PRUNE_S.label} (mean)", f"{PRUNE_S.label} (max)", f"{RETRAIN_S.label} (mean)",
              f"{PRUNE_PEAK_MB.label} (max; {measured})"]
    return Table(f"{group.title}: what each method cost (wall time and peak memory of pruning)", header, rows)


def mean_ci(e: Estimate) -> str:
    """mean ± half-width, or mean [low, high] where clipping to [0, 100] made the interval uneven."""
    if e.n < 2:
        return pct(e.mean)
    if not math.isclose(e.mean - e.ci_low, e.ci_high - e.mean, abs_tol=1e-12):
        return f"{pct(e.mean)} [{pct(e.ci_low)}, {pct(e.ci_high)}]"
    return f"{pct(e.mean)} ± {pct(e.half_width)}"


def column_levels(group: Group) -> list[str]:
    """Every level run in the group, by the compression it reached."""
    reached: dict[str, list[float]] = {}
    for curve in group.curves.values():
        for point in curve.points.values():
            reached.setdefault(point.level, []).append(point.mean_compression())
    return sorted(reached, key=lambda level: (min(reached[level]), level))


def wide_table(group: Group) -> Table:
    """Strategies x levels: mean test top-1 ± the 95% CI half-width over seeds (n in the header
    when every cell has the same, else in the cell)."""
    levels = column_levels(group)
    counts = {len(p.top1) for c in group.curves.values() for p in c.points.values()}
    same_n = len(counts) == 1
    rows = []
    for dense in group.dense.values():
        d = accuracy_estimate(list(dense.top1.values()))
        rows.append(["dense", dense.setting or "-", *([mean_ci(d)] * len(levels))])
    for curve in group.sorted_curves():
        by_level = {p.level: p for p in curve.points.values()}
        cells = []
        for level in levels:
            point = by_level.get(level)
            if point is None:
                cells.append("")
                continue
            e = point.top1_estimate()
            cells.append(mean_ci(e) if same_n else f"{mean_ci(e)} (n = {e.n})")
        rows.append([curve.name + (" (control)" if curve.role == "control" else ""), curve.setting or "-", *cells])
    n = f", n = {counts.pop()} seeds" if same_n and counts else ""
    return Table(f"{group.title}: test {TOP1.header()}, mean ± 95% CI half-width{n}", ["strategy", "setting", *levels], rows)


def recipe_text(recipe: dict[str, object]) -> str:
    order = ("mode", "epochs", "lr", "lr_schedule", "batch_size", "optimizer", "momentum", "weight_decay")
    keys = [k for k in order if k in recipe] + sorted(k for k in recipe if k not in order)
    return ", ".join(f"{k} {recipe[k]}" for k in keys)


def provenance_table(group: Group) -> Table:
    """The recipes and versions a reader needs to redo the comparison, and the dense model's size."""
    rows = []
    if group.params_total is not None:
        prunable = f" ({group.prunable_total:,} prunable)" if group.prunable_total else ""
        rows.append(["dense parameters", f"{group.params_total:,}{prunable}"])
    if group.macs_dense is not None:
        rows.append(["dense MACs per example", f"{group.macs_dense:,} ({2 * group.macs_dense:,} FLOPs)"])
    for recipe_id, recipe in sorted(group.dense_recipes.items()):
        rows.append([f"dense training recipe {recipe_id}", recipe_text(recipe) or "defaults"])
    for recipe_id, recipe in sorted(group.retrain_recipes.items()):
        rows.append([f"retraining recipe {recipe_id}", recipe_text(recipe)])
    for versions in sorted(group.versions):
        rows.append(["software and device", ", ".join(f"{k} {v}" for k, v in versions)])
    return Table(f"{group.title}: recipe and provenance", ["what", "value"], rows)


def group_tables(group: Group) -> list[Table]:
    return [levels_table(group), paired_table(group), summary_table(group)]



def latency_table(group: Group) -> Table:
    """Measured against theoretical speedup per (runtime, form) a run timed, the dense and pruned
    medians beside it; "best" rows time each model in its own fastest form. Means over seeds."""
    rows = []
    for curve in group.sorted_curves():
        for point in curve.ordered():
            for (runtime, form), seeds in sorted(point.form_latency.items(), key=lambda kv: (kv[0] == BEST, kv[0][1] != "eager", kv[0])):
                speedup, dense_ms, pruned_ms = (estimate([t[i] for t in seeds.values()]).mean for i in range(3))
                theory = point.mean_speedup()
                rows.append([curve.name, curve.setting or "-", point.level, runtime, form, f"{dense_ms:.3f}",
                             f"{pruned_ms:.3f}", f"{theory:.2f}", f"{speedup:.2f}", f"{speedup / theory:.2f}", str(len(seeds))])
    setups = "; ".join(sorted(group.latency_setups))
    header = ["strategy", "setting", "target", "runtime", "form", DENSE_MS.label, PRUNED_MS.label,
              f"theoretical {THEORETICAL_SPEEDUP.label}", MEASURED_SPEEDUP.label, "of theoretical", "n"]
    return Table(f"{group.title}: measured speedup per runtime and form ({setups})", header, rows)
