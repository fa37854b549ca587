"""Reports: curves with confidence bands, tables, paired statistics, checklist, HTML."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from prunebench.store.files import write_atomic
from prunebench.report.aggregate import build_groups
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.page import Section, render
from prunebench.report.literature import CREDIT, published
from prunebench.report.plots import (
    curve_figure, density_level, latency_figure, layer_density_figure, measured_speedup_figure, pre_retrain_figure,
    measured_curve_figure, trainability_figure,
)
from prunebench.report.matched import matched_table
from prunebench.report.recipes import recipe_tables
from prunebench.report.results import mark_dense_checks, open_db
from prunebench.report.tables import Table, controls_table, cost_table, group_tables, provenance_table, wide_table

REPORT_FILE = "report.html"
DEFINITIONS = (
    "Compression ratio = total parameters / nonzero parameters (whole model). Theoretical speedup = "
    "dense MACs / effective MACs (MACs of nonzero weights). Top-1 over the whole test set, which is "
    "never used for selection. Bands and intervals: 95% Student-t confidence intervals over seeds; "
    "paired differences are taken per seed, since the strategies of one seed prune the same dense model; "
    "their verdicts are Holm-corrected over all paired tests of a model (family-wise 5%), their intervals are not."
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_tables(out_dir: Path, name: str, tables: list[tuple[str, Table]]) -> None:
    for kind, table in tables:
        for ext, text in (("md", table.markdown()), ("csv", table.csv()), ("tex", table.latex())):
            write_atomic(out_dir / f"{name}-{kind}.{ext}", text.encode())


def write_report(results_dir: Path, out_dir: Path, density_at: float | None = None) -> Path:
    """Write figures (PNG), tables (Markdown, CSV, LaTeX) and one self-contained HTML file.

    ``density_at``: the compression level of the per-layer density figure (default: the level
    most curves ran, nearest 16x)."""
    rows = open_db(results_dir).rows()
    mismatched = mark_dense_checks(results_dir, rows)
    groups = build_groups(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for group in groups:
        name = slug(group.title)
        points = published(group.dataset, group.model)
        figures = []
        for axis in ("compression", "speedup"):
            png = curve_figure(group, axis, points)
            write_atomic(out_dir / f"{name}-top1-vs-{axis}.png", png)
            figures.append((f"{group.title}: top-1 vs {axis}", png))
        if group.has_latency():
            for kind, draw in (("measured-speedup", measured_speedup_figure), ("top1-vs-latency", latency_figure),
                               ("top1-vs-measured-speedup", measured_curve_figure)):
                png = draw(group)
                write_atomic(out_dir / f"{name}-{kind}.png", png)
                figures.append((f"{group.title}: {kind.replace('-', ' ')}", png))
        if any(p.pre_top1 for c in group.curves.values() for p in c.points.values()):
            png = pre_retrain_figure(group)
            write_atomic(out_dir / f"{name}-pre-retrain-top1.png", png)
            figures.append((f"{group.title}: top-1 right after pruning, before retraining", png))
        if any(p.jsv_mean for c in group.curves.values() for p in c.points.values()):
            png = trainability_figure(group)
            write_atomic(out_dir / f"{name}-top1-vs-trainability.png", png)
            figures.append((f"{group.title}: final top-1 against the mean Jacobian singular value after pruning", png))
        level = density_level(group, density_at)
        if level is not None:
            png = layer_density_figure(group, level)
            write_atomic(out_dir / f"{name}-layer-density.png", png)
            figures.append((f"{group.title}: per-layer density at {float(json.loads(level)):g}x", png))
        tables = group_tables(group)
        write_tables(out_dir, name, list(zip(("levels", "paired", "summary"), tables)))
        wide, recipe = wide_table(group), provenance_table(group)
        write_tables(out_dir, name, [("top1", wide), ("provenance", recipe)])
        tables = [recipe, wide, *tables[1:]]  # the long-form levels table stays in the files
        sanity = controls_table(group)
        if sanity.rows:
            write_tables(out_dir, name, [("controls", sanity)])
            tables.insert(2, sanity)
        costs = cost_table(group)
        if costs.rows:
            write_tables(out_dir, name, [("cost", costs)])
        by_recipe, _ = recipe_tables(group)
        write_tables(out_dir, name, [(f"recipes-{i}" if i < len(by_recipe) - 1 else "flips", t) for i, t in enumerate(by_recipe)])
        tables += by_recipe
        for measured in (False, True) if group.has_latency() else (False,):
            table = matched_table(group, measured)
            if table.rows:
                kind = "matched-measured-speedup" if measured else "matched-speedup"
                write_tables(out_dir, name, [(kind, table)])
                tables.append(table)
        if costs.rows:
            tables.append(costs)
        notes = [
            f"{len(points)} published result(s) for this dataset and model drawn as gray crosses. {html.escape(CREDIT)}"
            if points
            else f"No published result in the literature table gives both accuracy and a compression or speedup ratio for {html.escape(group.title)}. {html.escape(CREDIT)}"
        ]
        sections.append(Section(group.title, figures, tables, evaluate_checklist(group), notes))
    failed = [r for r in rows if r["status"] != "completed"]
    preamble = [
        html.escape(DEFINITIONS),
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
