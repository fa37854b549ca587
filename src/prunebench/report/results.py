"""``prunebench results``: one flat row per run from the results database.

Columns: what defines the run (role, strategy, scope, structure, schedule, retraining mode, target
kind and value, short ids of the dense recipe and of the retraining recipe), its headline
metrics, and every other spec key whose value differs between the runs (e.g. ``finetune.lr``).

``dense_check`` says whether the dense weights a result was computed from (its recorded
``dense_sha256``) are still the file in dense/<dense_id>/model.pt: ``ok``, ``mismatch`` (the
checkpoint was replaced since; the report leaves such results out), ``no checkpoint``, or empty
when the result records no digest.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from prunebench.errors import ConfigError
from prunebench.metrics.declared import METRICS
from prunebench.record import RunResult, role_of
from prunebench.report.aggregate import differences
from prunebench.report.aggregate import flatten as spec_flatten
from prunebench.store import DB_FILE, ResultsDB
from prunebench.store.layout import DENSE_MISMATCH, DENSE_MISSING, DENSE_OK, dense_digest

log = logging.getLogger("prunebench")

# The headline metrics, in column order: names, and where each is read, are declared in
# prunebench.metrics.declared (one definition each, docs/metrics.md).
METRIC_COLUMNS = (
    "compression_ratio", "storage_compression_ratio", "theoretical_speedup", "params_total", "params_nonzero", "macs_dense",
    "macs_effective", "dense_top1", "pre_retrain_top1", "top1", "top5", "quantized_top1",
    "dense_perplexity", "pre_finetune_perplexity", "perplexity", "wall_time_s",
)
HEADLINE = tuple(METRICS.get(name) for name in METRIC_COLUMNS)  # a name nothing declares fails at import
COLUMNS = (
    "run_id", "status", "role", "dataset", "model", "strategy", "scope", "structure", "schedule", "retrain_mode",
    "target_kind", "target_value", "dense_recipe", "retrain_recipe", "seed",
    *METRIC_COLUMNS, "error", "dense_check",
)


def metrics(result: RunResult) -> dict[str, Any]:
    """The record's headline numbers, as the flat columns name them (accuracy or perplexity: the other is empty)."""
    return {metric.name: metric.read(result) for metric in HEADLINE}


def open_db(results_dir: Path) -> ResultsDB:
    if not (results_dir / DB_FILE).is_file():
        raise ConfigError(f"--results {results_dir}: no {DB_FILE} there (run a config with `prunebench run` first)")
    return ResultsDB(results_dir)


def dense_checks(results_dir: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    """run_id -> whether the dense weights its result records are the checkpoint's current file."""
    current: dict[str, str | None] = {}
    checks = {}
    for row in rows:
        recorded = row["result"].dense_sha256 if row.get("result") is not None else None
        dense_id = row.get("dense_id")
        if recorded is None or dense_id is None:
            continue
        digest = dense_digest(results_dir, dense_id, current)
        checks[row["run_id"]] = DENSE_MISSING if digest is None else DENSE_OK if digest == recorded else DENSE_MISMATCH
    return checks


def mark_dense_checks(results_dir: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Set each row's ``dense_check``; returns (and warns about) the mismatched run ids."""
    checks = dense_checks(results_dir, rows)
    for row in rows:
        row["dense_check"] = checks.get(row["run_id"])
    mismatched = [row["run_id"] for row in rows if row["dense_check"] == DENSE_MISMATCH]
    if mismatched:
        shown = ", ".join(mismatched[:10]) + (", ..." if len(mismatched) > 10 else "")
        log.warning(
            "%d result(s) were computed from dense weights that are no longer the checkpoint in %s/dense "
            "(dense_check: mismatch; running the sweep again redoes them): %s", len(mismatched), results_dir, shown,
        )
    return mismatched


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    flat = {c: row.get(c) for c in COLUMNS if c in row}
    flat["role"] = role_of(row.get("role"), row.get("strategy"), row.get("kind") == "dense")
    if row.get("result") is not None:
        flat.update(metrics(row["result"]))
    flat["error"] = row.get("error")
    return flat


def varying_spec(rows: list[dict[str, Any]], flat: list[dict[str, str]] | None = None) -> list[str]:
    """Dotted spec keys whose value differs between the pruned runs (beyond the fixed columns).

    ``flat``: each row's spec already flattened, in the order of ``rows``."""
    if flat is None:
        flat = [spec_flatten(r.get("spec") or {}) for r in rows]
    specs = [f for r, f in zip(rows, flat, strict=True) if r.get("kind") != "dense" and r.get("spec")]
    fixed = {"seed", "dataset", "model", "prune.strategy", "prune.scope", "prune.structure", "prune.schedule",
             "retrain.mode", "prune.compression", "prune.speedup", "prune.channel_fraction", "prune.iterative.rounds",
             "prune.sparsity"}
    return [k for k in differences(specs) if k not in fixed]


def results_rows(results_dir: Path) -> list[dict[str, Any]]:
    """One flat row per run: the fixed columns, then each spec key that varies between runs."""
    rows = open_db(results_dir).rows()
    mark_dense_checks(results_dir, rows)
    specs = [spec_flatten(row.get("spec") or {}) for row in rows]  # once per row: the costly part at 1,000 rows
    extra = varying_spec(rows, specs)
    flat = []
    for row, values in zip(rows, specs, strict=True):
        flat.append({**flatten(row), **{k: json.loads(values[k]) if k in values else None for k in extra}})
    return flat


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_results(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    shown = [c for c in (list(rows[0]) if rows else COLUMNS) if c != "error"]
    table = [shown] + [[cell(r.get(c)) for c in shown] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() + "\n" for line in table)
