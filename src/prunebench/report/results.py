"""``prunebench results``: one flat row per run from the results database.

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
from prunebench.store import DB_FILE, ResultsDB
from prunebench.store.layout import dense_digest

log = logging.getLogger("prunebench")

COLUMNS = (
    "run_id", "status", "dataset", "model", "strategy", "scope", "target_compression", "seed",
    "compression_ratio", "theoretical_speedup", "params_total", "params_nonzero", "macs_dense",
    "macs_effective", "dense_top1", "pre_finetune_top1", "top1", "top5", "wall_time_s", "error", "dense_check",
)
METRIC_COLUMNS = COLUMNS[8:19]
DENSE_OK, DENSE_MISMATCH, DENSE_MISSING = "ok", "mismatch", "no checkpoint"


def open_db(results_dir: Path) -> ResultsDB:
    if not (results_dir / DB_FILE).is_file():
        raise ConfigError(f"--results {results_dir}: no {DB_FILE} there (run a config with `prunebench run` first)")
    return ResultsDB(results_dir)


def dense_checks(results_dir: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    """run_id -> whether the dense weights its result records are the checkpoint's current file."""
    current: dict[str, str | None] = {}
    checks = {}
    for row in rows:
        recorded = (row.get("result") or {}).get("dense_sha256")
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
    result = row.get("result") or {}
    flat = {c: row.get(c) for c in COLUMNS if c in row}
    flat.update({c: result.get(c) for c in METRIC_COLUMNS})
    flat["error"] = row.get("error")
    return flat


def results_rows(results_dir: Path) -> list[dict[str, Any]]:
    rows = open_db(results_dir).rows()
    mark_dense_checks(results_dir, rows)
    return [flatten(r) for r in rows]


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
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    shown = [c for c in COLUMNS if c != "error"]
    table = [shown] + [[cell(r.get(c)) for c in shown] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() + "\n" for line in table)
