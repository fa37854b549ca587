"""``prunebench results``: one flat row per run from the results database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from prunebench.errors import ConfigError
from prunebench.store import DB_FILE, ResultsDB

COLUMNS = (
    "run_id", "status", "dataset", "model", "strategy", "scope", "target_compression", "seed",
    "compression_ratio", "theoretical_speedup", "params_total", "params_nonzero", "macs_dense",
    "macs_effective", "dense_top1", "pre_finetune_top1", "top1", "top5", "wall_time_s", "error",
)
METRIC_COLUMNS = COLUMNS[8:19]


def open_db(results_dir: Path) -> ResultsDB:
    if not (results_dir / DB_FILE).is_file():
        raise ConfigError(f"--results {results_dir}: no {DB_FILE} there (run a config with `prunebench run` first)")
    return ResultsDB(results_dir)


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    result = row.get("result") or {}
    flat = {c: row.get(c) for c in COLUMNS if c in row}
    flat.update({c: result.get(c) for c in METRIC_COLUMNS})
    flat["error"] = row.get("error")
    return flat


def results_rows(results_dir: Path) -> list[dict[str, Any]]:
    return [flatten(r) for r in open_db(results_dir).rows()]


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
