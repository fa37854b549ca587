"""The report writer: curves with confidence bands, tables, paired statistics, checklist, HTML."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from prunebench.metrics.declared import TOP1
from prunebench.store.files import write_atomic
from prunebench.report.aggregate import Group, build_groups
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.guidance import evaluate_guidance, guidance_markdown
from prunebench.report.page import Section, render
from prunebench.report.literature import CREDIT, PublishedPoint, published
from prunebench.report.plots import (
    curve_figure, density_level, drop_figure, latency_figure, layer_density_figure, measured_curve_figure,
    measured_speedup_figure, pre_retrain_figure, trainability_figure,
)
from prunebench.report.matched import matched_table
from prunebench.report.recipes import recipe_tables
from prunebench.report.lm import LM_DEFINITIONS, TASKS_NOTE, lm_tables, perplexity_figure, task_tables
from prunebench.report.results import mark_dense_checks, open_db
from prunebench.report.tables import (
    Table, controls_table, cost_table, group_tables, latency_table, paired_table, provenance_table, summary_table,
    wide_table,
)

REPORT_FILE = "report.html"
DEFINITIONS = (
    "Compression ratio = total parameters / nonzero parameters (whole model). Theoretical speedup = "
    "dense MACs / effective MACs (MACs of nonzero weights). Top-1 over the whole test set, which is "
    "never used for selection. Bands and intervals: 95% Student-t confidence intervals over seeds, those of "
    "accuracies clipped to [0, 100]; paired differences are taken per seed, since the strategies of one seed "
    "prune the same dense model. The paired tests' family is fixed in advance: each method against the random "
    "control and against magnitude, Holm-corrected over the levels of each pair (family-wise 5% per pair); "
    "the table of every pair is exploratory (Holm over all its tests). Intervals of differences are uncorrected."
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
    levels, paired, summary = tables  # the one number per curve opens the section, beside the main figure
    tasks = task_tables(group)
    write_tables(out_dir, name, tasks)
    notes = [html.escape(TASKS_NOTE)] if tasks else []
    shown = [levels, paired, *(t for _, t in tasks)]
    if group.has_latency():  # prefill and decode per runtime, dense against pruned in the same rounds
        speed = latency_table(group)
        write_tables(out_dir, name, [("latency", speed)])
        shown.append(speed)
    return Section(group.title, figures, shown, evaluate_checklist(group), notes, [], [summary])


def write_tables(out_dir: Path, name: str, tables: list[tuple[str, Table]]) -> None:
    for kind, table in tables:
        for ext, text in (("md", table.markdown()), ("csv", table.csv()), ("tex", table.latex())):
            write_atomic(out_dir / f"{name}-{kind}.{ext}", text.encode())


def has(group: Group, field: str) -> bool:
    return any(getattr(p, field) for c in group.curves.values() for p in c.points.values())


def group_figures(group: Group, points: list[PublishedPoint], density_at: float | None) -> list[tuple[str, str, bytes]]:
    """(file kind, caption, PNG) for every figure the group's data can support."""
    figures = [(f"top1-vs-{axis}", f"{group.title}: top-1 vs {axis}", curve_figure(group, axis, points))
               for axis in ("compression", "speedup")]
    if group.dense:
        figures.insert(1, ("top1-drop-vs-compression", f"{group.title}: top-1 change from dense, every seed a point",
                           drop_figure(group)))
    if group.has_latency():
        for kind, draw in (("measured-speedup", measured_speedup_figure), ("top1-vs-latency", latency_figure),
                           ("top1-vs-measured-speedup", measured_curve_figure)):
            figures.append((kind, f"{group.title}: {kind.replace('-', ' ')}", draw(group)))
    if has(group, "pre_top1"):
        figures.append(("pre-retrain-top1", f"{group.title}: top-1 right after pruning, before retraining",
                        pre_retrain_figure(group)))
    if has(group, "jsv_mean"):
        figures.append(("top1-vs-trainability",
                        f"{group.title}: final top-1 against the mean Jacobian singular value after pruning",
                        trainability_figure(group)))
    level = density_level(group, density_at)
    if level is not None:
        figures.append(("layer-density", f"{group.title}: per-layer density at {float(json.loads(level)):g}x",
                        layer_density_figure(group, level)))
    return figures


def group_report_tables(group: Group) -> list[tuple[str, Table, bool]]:
    """(file kind, table, shown in the HTML) in the order a reader wants them."""
    levels, paired, summary = group_tables(group)
    tables = [("provenance", provenance_table(group), True), ("top1", wide_table(group), True),
              ("levels", levels, False)]  # the long form stays in the files
    sanity = controls_table(group)
    if sanity.rows:
        tables.append(("controls", sanity, True))
    tables += [("paired", paired, True), ("summary", summary, False)]  # the summary opens the page (headline)
    exploratory = paired_table(group, exploratory=True)
    by_recipe, _ = recipe_tables(group)
    tables += [(f"recipes-{i}" if i < len(by_recipe) - 1 else "flips", t, True) for i, t in enumerate(by_recipe)]
    if group.has_latency():
        tables.append(("latency", latency_table(group), True))
    for measured in (False, True) if group.has_latency() else (False,):
        matched = matched_table(group, measured)
        if matched.rows:
            tables.append(("matched-measured-speedup" if measured else "matched-speedup", matched, True))
    costs = cost_table(group)
    if costs.rows:
        tables.append(("cost", costs, True))
    if exploratory.rows:
        tables.append(("paired-all", exploratory, True))
    return tables


def headline(summary: Table) -> str:
    """The answer in one sentence: the curves ranked by mean top-1 across the compression range."""
    rows = sorted(summary.rows, key=lambda r: TOP1.best_first(float(r[3])) if r[3] != "n/a" else 0.0)
    if not rows:
        return ""
    ranked = "; ".join(f"{html.escape(r[0])}{' (' + html.escape(r[1]) + ')' if r[1] != '-' else ''} {r[3]}%"
                       + (f" {r[5]}" if r[5].startswith("[") else "") for r in rows)
    return f"Mean top-1 across the compression range ({html.escape(rows[0][2])}), best first, 95% CI: {ranked}."


def write_report(results_dir: Path, out_dir: Path, density_at: float | None = None) -> Path:
    """Write figures (PNG), tables (Markdown, CSV, LaTeX) and one self-contained HTML file.

    ``density_at``: the compression level of the per-layer density figure (default: the level
    most curves ran, nearest 16x)."""
    rows = open_db(results_dir).rows()
    mismatched = mark_dense_checks(results_dir, rows)
    groups = build_groups(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    pairs = tuple(g.title for g in groups)
    for group in groups:
        if group.is_lm:
            sections.append(lm_section(group, out_dir))
            continue
        name = slug(group.title)
        points = published(group.dataset, group.model)
        figures = []
        for kind, caption, png in group_figures(group, points, density_at):
            write_atomic(out_dir / f"{name}-{kind}.png", png)
            figures.append((caption, png))
        tables = group_report_tables(group)
        write_tables(out_dir, name, [(kind, table) for kind, table, _ in tables])
        tables = [table for _, table, shown in tables if shown]
        notes = [
            f"{len(points)} published result(s) for this dataset and model drawn as gray crosses. {html.escape(CREDIT)}"
            if points
            else f"No published result in the literature table gives both accuracy and a compression or speedup ratio for {html.escape(group.title)}. {html.escape(CREDIT)}"
        ]
        checks, guidance = evaluate_checklist(group), evaluate_guidance(group, pairs)
        write_atomic(out_dir / f"{name}-guidance.md", guidance_markdown(group.title, checks, guidance).encode())
        summary = summary_table(group)
        sections.append(Section(group.title, figures, tables, checks, notes, guidance, [summary], headline(summary)))
    failed = [r for r in rows if r["status"] != "completed"]
    preamble = [
        *([html.escape(DEFINITIONS)] if any(not g.is_lm for g in groups) or not groups else []),
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
