"""Tables of mean, std and n at each level; paired differences; one summary number per curve."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from prunebench.experiment.sweep import CONTROL_STRATEGY
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
    rows = []
    if group.dense_top1:
        d = estimate(list(group.dense_top1.values()))
        rows.append(["dense", "-", "1", "1.00", "1.00", pct(d.mean), pct(d.std), str(d.n), ci(d)])
    for series in sorted(group.series):
        for level in group.levels(series):
            point = group.series[series][level]
            e = point.top1_estimate()
            rows.append([
                series[0], series[1], f"{level:g}", f"{point.mean_compression():.2f}", f"{point.mean_speedup():.2f}",
                pct(e.mean), pct(e.std), str(e.n), ci(e),
            ])
    header = ["strategy", "setting", "target", "compression", "speedup", "top-1 mean (%)", "std", "n", "95% CI"]
    return Table(f"{group.title}: test top-1 at each compression level", header, rows)


def paired_table(group: Group) -> Table:
    """a - b per level, paired across seeds: strategies of one setting, and each against random."""
    rows = []
    for (a, sa), (b, sb) in itertools.combinations(sorted(group.series), 2):
        if sa != sb and CONTROL_STRATEGY not in (a, b):
            continue
        if a == CONTROL_STRATEGY:  # always report 'method - random'
            (a, sa), (b, sb) = (b, sb), (a, sa)
        pa, pb = group.series[(a, sa)], group.series[(b, sb)]
        for level in sorted(set(pa) & set(pb)):
            diff = paired_difference(pa[level].top1, pb[level].top1)
            if diff is None:
                continue
            verdict = "" if diff.n < 2 else ("a > b" if diff.ci_low > 0 else "a < b" if diff.ci_high < 0 else "no difference")
            rows.append([f"{a} ({sa}) - {b} ({sb})", f"{level:g}", pct(diff.mean), str(diff.n), ci(diff), verdict])
    header = ["a - b", "target", "mean difference (points)", "n", "95% CI", "at 95%"]
    return Table(f"{group.title}: paired differences in top-1", header, rows)


def summary_table(group: Group) -> Table:
    """Mean top-1 over the log2-compression range, per seed, then mean and CI over seeds."""
    rows = []
    for series in sorted(group.series):
        levels = group.levels(series)
        points = [group.series[series][lvl] for lvl in levels]
        seeds = set.intersection(*(set(p.top1) for p in points)) if points else set()
        per_seed = [area_under_log2(levels, [p.top1[s] for p in points]) for s in sorted(seeds)]
        if not per_seed:
            continue
        e = estimate(per_seed)
        rows.append([series[0], series[1], f"{levels[0]:g}-{levels[-1]:g}", pct(e.mean), str(e.n), ci(e)])
    header = ["strategy", "setting", "levels", "area under top-1 vs log2 compression (%)", "n", "95% CI"]
    return Table(f"{group.title}: one number per curve", header, rows)


def group_tables(group: Group) -> list[Table]:
    return [levels_table(group), paired_table(group), summary_table(group)]

