"""Tables of mean, std and n at each level; paired differences; one summary number per curve."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from prunebench.report.aggregate import Group
from prunebench.report.stats import Estimate, area_under_log2, estimate, paired_difference


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
        d = estimate(list(dense.top1.values()))
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
                curve.strategy, curve.setting or "-", point.level, f"{point.mean_compression():.2f}", *storage,
                f"{point.mean_speedup():.2f}", pct(e.mean), pct(e.std), str(e.n), ci(e),
            ])
    storage_header = ["storage compression", "quantized top-1 (%)"] if stored else []
    header = ["strategy", "setting", "target", "compression", *storage_header, "speedup", "top-1 mean (%)", "std", "n",
              "95% CI"]
    return Table(f"{group.title}: test top-1 at each target", header, rows)


def paired_table(group: Group) -> Table:
    """a - b per target, paired across seeds, between curves that differ only in strategy, scope
    and options (so the same recipe, schedule, structure, target kind); a control is always b."""
    rows = []
    for a, b in itertools.combinations(group.sorted_curves(), 2):
        if a.comparison() != b.comparison() or a.role == b.role == "control":
            continue
        if a.role == "control":  # always report 'method - control'
            a, b = b, a
        for level in sorted(set(a.points) & set(b.points)):
            diff = paired_difference(a.points[level].top1, b.points[level].top1)
            if diff is None:
                continue
            verdict = "" if diff.n < 2 else ("a > b" if diff.ci_low > 0 else "a < b" if diff.ci_high < 0 else "no difference")
            rows.append([f"{a.label} - {b.label}", a.points[level].level, pct(diff.mean), str(diff.n), ci(diff), verdict])
    header = ["a - b", "target", "mean difference (points)", "n", "95% CI", "at 95%"]
    return Table(f"{group.title}: paired differences in top-1", header, rows)


def summary_table(group: Group) -> Table:
    """Mean top-1 over the log2-compression range, per seed, then mean and CI over seeds.

    x is the target ratio for compression targets, the reached compression for the other kinds."""
    rows = []
    for curve in group.sorted_curves():
        points = curve.ordered()
        seeds = set.intersection(*(set(p.top1) for p in points)) if points else set()
        by_target = curve.target_kind == "compression"
        per_seed = [
            area_under_log2([float(p.target.value) if by_target else p.compression[s] for p in points],
                            [p.top1[s] for p in points])
            for s in sorted(seeds)
        ]
        if not per_seed:
            continue
        e = estimate(per_seed)
        span = f"{points[0].level}-{points[-1].level}" if by_target else f"{points[0].mean_compression():.3g}-{points[-1].mean_compression():.3g}x"
        rows.append([curve.strategy, curve.setting or "-", span, pct(e.mean), str(e.n), ci(e)])
    header = ["strategy", "setting", "levels", "area under top-1 vs log2 compression (%)", "n", "95% CI"]
    return Table(f"{group.title}: one number per curve", header, rows)


def group_tables(group: Group) -> list[Table]:
    return [levels_table(group), paired_table(group), summary_table(group)]

