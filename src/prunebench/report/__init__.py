"""Reports: curves with confidence bands, tables, paired statistics, checklist, HTML."""

from __future__ import annotations

import html
import re
from pathlib import Path

from prunebench.store.files import write_atomic
from prunebench.report.aggregate import Group, build_groups
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.page import Section, render
from prunebench.report.literature import CREDIT, published
from prunebench.report.lm import LM_DEFINITIONS, lm_tables, perplexity_figure
from prunebench.report.plots import curve_figure, latency_figure, measured_speedup_figure
from prunebench.report.results import mark_dense_checks, open_db
from prunebench.report.tables import group_tables

REPORT_FILE = "report.html"
DEFINITIONS = (
    "Compression ratio = total parameters / nonzero parameters (whole model). Theoretical speedup = "
    "dense MACs / effective MACs (MACs of nonzero weights). Top-1 over the whole test set, which is "
    "never used for selection. Bands and intervals: 95% Student-t confidence intervals over seeds; "
    "paired differences are taken per seed, since the strategies of one seed prune the same dense model."
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def lm_section(group: Group, out_dir: Path) -> Section:
    """A language-model comparison: perplexity against sparsity, its tables and the checklist."""
    name = slug(group.title)
    png = perplexity_figure(group)
    write_atomic(out_dir / f"{name}-perplexity-vs-sparsity.png", png)
    figures = [(f"{group.title}: perplexity vs sparsity", png)]
    if group.has_latency():
        png = measured_speedup_figure(group)
        write_atomic(out_dir / f"{name}-measured-speedup.png", png)
        figures.append((f"{group.title}: measured speedup", png))
    tables = lm_tables(group)
    for table, kind in zip(tables, ("levels", "paired", "summary")):
        for ext, text in (("md", table.markdown()), ("csv", table.csv()), ("tex", table.latex())):
            write_atomic(out_dir / f"{name}-{kind}.{ext}", text.encode())
    return Section(group.title, figures, tables, evaluate_checklist(group), [])


def write_report(results_dir: Path, out_dir: Path) -> Path:
    """Write figures (PNG), tables (Markdown, CSV, LaTeX) and one self-contained HTML file."""
    rows = open_db(results_dir).rows()
    mismatched = mark_dense_checks(results_dir, rows)
    groups = build_groups(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for group in groups:
        if group.is_lm:
            sections.append(lm_section(group, out_dir))
            continue
        name = slug(group.title)
        points = published(group.dataset, group.model)
        figures = []
        for axis in ("compression", "speedup"):
            png = curve_figure(group, axis, points)
            write_atomic(out_dir / f"{name}-top1-vs-{axis}.png", png)
            figures.append((f"{group.title}: top-1 vs {axis}", png))
        if group.has_latency():
            for kind, draw in (("measured-speedup", measured_speedup_figure), ("top1-vs-latency", latency_figure)):
                png = draw(group)
                write_atomic(out_dir / f"{name}-{kind}.png", png)
                figures.append((f"{group.title}: {kind.replace('-', ' ')}", png))
        tables = group_tables(group)
        for table, kind in zip(tables, ("levels", "paired", "summary")):
            for ext, text in (("md", table.markdown()), ("csv", table.csv()), ("tex", table.latex())):
                write_atomic(out_dir / f"{name}-{kind}.{ext}", text.encode())
        notes = [
            f"{len(points)} published result(s) for this dataset and model drawn as gray crosses. {html.escape(CREDIT)}"
            if points
            else f"No published result in the literature table gives both accuracy and a compression or speedup ratio for {html.escape(group.title)}. {html.escape(CREDIT)}"
        ]
        sections.append(Section(group.title, figures, tables, evaluate_checklist(group), notes))
    failed = [r for r in rows if r["status"] != "completed"]
    preamble = [
        html.escape(DEFINITIONS),
        *([html.escape(LM_DEFINITIONS)] if any(g.is_lm for g in groups) else []),
        f"{len(rows)} runs in the database, {len(failed)} not completed"
        + (": " + ", ".join(f"{r['run_id']} ({r['status']})" for r in failed[:20]) if failed else "."),
    ]
    if mismatched:
        preamble.append(
            f"{len(mismatched)} completed run(s) left out: their recorded dense_sha256 is not the SHA-256 of "
            "the dense checkpoint now on disk (it was replaced after they pruned it): "
            + html.escape(", ".join(mismatched[:20]))
        )
    path = out_dir / REPORT_FILE
    write_atomic(path, render("prunebench report", sections, preamble).encode())
    return path


__all__ = ["REPORT_FILE", "write_report"]
