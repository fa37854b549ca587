"""The results database: one SQLite file in the results directory, the system of record.

One row per run (pruned runs and dense baselines alike), keyed by run id, so rerunning a sweep
updates rows instead of duplicating them. WAL mode plus a busy timeout lets many processes
write at once; every write is one short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_FILE = "prunebench.db"
BUSY_TIMEOUT_S = 60.0

STATUSES = ("pending", "running", "completed", "failed", "diverged")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- 'pruned' or 'dense'
    status TEXT NOT NULL,
    dataset TEXT, model TEXT, strategy TEXT, scope TEXT,
    target_compression REAL, seed INTEGER,
    dense_id TEXT, finetune_id TEXT,  -- what the run shares with others (fair-comparison checks)
    spec TEXT NOT NULL,               -- canonical resolved spec, JSON
    result TEXT,                      -- result.json contents, JSON
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL, finished_at REAL, wall_time_s REAL,
    provenance TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_group ON runs (dataset, model, strategy, scope, target_compression);
"""

COLUMNS = (
    "run_id", "kind", "status", "dataset", "model", "strategy", "scope", "target_compression", "seed",
    "dense_id", "finetune_id", "spec", "result", "error", "attempts", "started_at", "finished_at",
    "wall_time_s", "provenance",
)
JSON_COLUMNS = ("spec", "result", "provenance")


class ResultsDB:
    """A thin, process-safe wrapper: open per process, short transactions."""

    def __init__(self, results_dir: Path) -> None:
        results_dir.mkdir(parents=True, exist_ok=True)
        self.path = results_dir / DB_FILE
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    def _write(self, sql: str, params: Mapping[str, Any] | tuple[Any, ...]) -> None:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
            try:
                conn.execute(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # an interrupt just after COMMIT must not become "no transaction is active"
                    conn.execute("ROLLBACK")
                raise

    def register(self, row: Mapping[str, Any]) -> None:
        """Add a run as pending, unless it is already known (its status is then kept)."""
        values = {c: row.get(c) for c in COLUMNS}
        values.update(status="pending", attempts=0)
        values = encode(values)
        names = ", ".join(values)
        self._write(
            f"INSERT INTO runs ({names}) VALUES ({', '.join(':' + n for n in values)}) ON CONFLICT(run_id) DO NOTHING",
            values,
        )

    def mark_running(self, run_id: str) -> None:
        self._write(
            "UPDATE runs SET status='running', attempts=attempts+1, started_at=:now, error=NULL WHERE run_id=:run_id",
            {"run_id": run_id, "now": time.time()},
        )

    def finish(self, run_id: str, status: str, result: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._write(
            "UPDATE runs SET status=:status, result=:result, error=:error, finished_at=:now, "
            "wall_time_s=:wall, provenance=:provenance WHERE run_id=:run_id",
            {
                "run_id": run_id, "status": status, "error": error, "now": time.time(),
                "result": json.dumps(result) if result is not None else None,
                "wall": (result or {}).get("wall_time_s"),
                "provenance": json.dumps((result or {}).get("provenance")) if result else None,
            },
        )

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            query = "SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY rowid"
            fetched = conn.execute(query, (status,) if status else ()).fetchall()
        return [decode(dict(r)) for r in fetched]

    def status_of(self, run_id: str) -> str | None:
        with self._connect() as conn:
            found = conn.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return found[0] if found else None

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            return dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())


def encode(values: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in values.items()}


def decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}
