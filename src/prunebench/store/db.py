"""The results database: one SQLite file in the results directory, the system of record.

One row per run (pruned runs and dense baselines alike), keyed by run id, so rerunning a sweep
updates rows instead of duplicating them. Its ``result`` is the run's RunResult; the other
columns index what the report and ``prunebench results`` group and filter by. The schema is
versioned (``PRAGMA user_version``); a file from an older version is migrated when opened. WAL mode plus a busy timeout lets many processes
write at once; every write is one short transaction.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from prunebench.errors import ConfigError, DataError
from prunebench.record import RunResult, index_of, load_result, role_of

log = logging.getLogger("prunebench")

DB_FILE = "prunebench.db"
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 2  # PRAGMA user_version; 0 is the layout before versions (see MIGRATIONS)

STATUSES = ("pending", "running", "completed", "failed", "diverged")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- 'pruned' or 'dense'
    status TEXT NOT NULL,
    dataset TEXT, model TEXT, strategy TEXT, scope TEXT, seed INTEGER,
    dense_id TEXT,                    -- the dense checkpoint the run prunes
    spec TEXT NOT NULL,               -- canonical resolved spec, JSON
    result TEXT,                      -- the RunResult (result.json), JSON
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL, finished_at REAL, wall_time_s REAL,
    provenance TEXT,
    role TEXT,                        -- 'method', 'control' or 'dense', as the sweep planned it
    target_kind TEXT, target_value,   -- a ratio or fraction, a round count, or an 'N:M' pattern
    structure TEXT, schedule TEXT, retrain_mode TEXT,
    dense_recipe TEXT, retrain_recipe TEXT  -- short ids of the train / finetune+retrain sections
);
CREATE INDEX IF NOT EXISTS runs_by_point ON runs (dataset, model, strategy, target_kind, target_value);
"""

COLUMNS = (
    "run_id", "kind", "status", "dataset", "model", "strategy", "scope", "seed",
    "dense_id", "spec", "result", "error", "attempts", "started_at", "finished_at",
    "wall_time_s", "provenance", "role", "target_kind", "target_value", "structure", "schedule",
    "retrain_mode", "dense_recipe", "retrain_recipe",
)
JSON_COLUMNS = ("spec", "provenance")
ADDED_IN_V1 = COLUMNS[COLUMNS.index("role"):]


def migrate_v0(conn: sqlite3.Connection) -> None:
    """The unversioned layout: add the index columns from each row's spec, turn each result
    into a RunResult, and drop ``target_compression`` (a compression, a speedup or a channel
    fraction depending on the run, now ``target_kind`` and ``target_value``)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    for column in ADDED_IN_V1:
        if column not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column}{' TEXT' if column != 'target_value' else ''}")
    rows = conn.execute("SELECT run_id, kind, strategy, spec, result FROM runs").fetchall()
    for run_id, kind, strategy, spec, result in rows:
        try:
            index = index_of(json.loads(spec))
        except UNREADABLE as exc:
            raise DataError(f"run {run_id}: its spec column cannot be read ({first_line(exc)})") from None
        index["role"] = role_of(None, strategy, kind == "dense")
        try:
            index["result"] = load_result(result).model_dump_json() if result else None
        except UNREADABLE as exc:
            raise DataError(f"run {run_id}: its result column cannot be read ({first_line(exc)})") from None
        index["run_id"] = run_id
        conn.execute(
            "UPDATE runs SET " + ", ".join(f"{k}=:{k}" for k in index if k != "run_id") + " WHERE run_id=:run_id", index
        )
    conn.execute("DROP INDEX IF EXISTS runs_by_group")
    if "target_compression" in have:
        conn.execute("ALTER TABLE runs DROP COLUMN target_compression")


def migrate_v1(conn: sqlite3.Connection) -> None:
    """Drop ``finetune_id``: a second id of the fine-tuning recipe; ``retrain_recipe`` is the one."""
    if "finetune_id" in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}:
        conn.execute("ALTER TABLE runs DROP COLUMN finetune_id")


MIGRATIONS = (migrate_v0, migrate_v1)  # MIGRATIONS[v] takes a file from version v to v + 1
# What decoding a damaged column raises: JSONDecodeError and pydantic's ValidationError are
# ValueErrors; a wrong JSON shape can raise the others before validation.
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, DataError)
REQUIRED_COLUMNS = ("run_id", "kind", "status", "spec", "result")  # a table named runs without these is not ours


class ResultsDB:
    """A thin, process-safe wrapper: open per process, short transactions."""

    def __init__(self, results_dir: Path) -> None:
        self.path = results_dir / DB_FILE
        if self.path.exists() or self.path.is_symlink():
            check_database(self.path)  # never add prunebench's table to someone else's file
        results_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._create_or_migrate()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: cannot open the results database ({exc})") from None

    def _create_or_migrate(self) -> None:
        # Not in WAL mode until the file is known to be prunebench's, at this version: a file
        # that cannot be migrated is refused as it was found.
        with self._connect(wal=False) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one process creates or migrates; the others wait
            version = 0
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise DataError(
                        f"{self.path}: schema version {version} is newer than this prunebench's "
                        f"({SCHEMA_VERSION}); open it with the version that wrote it"
                    )
                if version < SCHEMA_VERSION:
                    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()
                    if exists:
                        for migrate in MIGRATIONS[version:]:
                            migrate(conn)
                        log.info("results database migrated from schema version %d to %d", version, SCHEMA_VERSION)
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:  # a failed write (a full disk) may have ended it already
                    conn.execute("ROLLBACK")
                if isinstance(exc, DataError) and str(exc).startswith("run "):  # a row the migration cannot read
                    raise DataError(f"{self.path}: cannot migrate from schema version {version}: {exc}; "
                                    "open it with the prunebench version that wrote it") from None
                raise
            conn.execute("PRAGMA journal_mode=WAL")

    @contextmanager
    def _connect(self, wal: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                if wal:
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                yield conn
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:  # a full disk ("disk I/O error"), a file made read-only, ...
            raise DataError(f"{self.path}: cannot use the results database ({exc})") from None

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
        values.update(index_of(row["spec"]), status="pending", attempts=0)
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

    def finish(self, run_id: str, status: str, result: RunResult | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._write(
            "UPDATE runs SET status=:status, result=:result, error=:error, finished_at=:now, "
            "wall_time_s=:wall, provenance=:provenance WHERE run_id=:run_id",
            {
                "run_id": run_id, "status": status, "error": error, "now": time.time(),
                "result": result.model_dump_json() if result is not None else None,
                "wall": result.timings.wall if result is not None else None,
                "provenance": result.provenance.model_dump_json() if result is not None else None,
            },
        )

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row decoded; a row that cannot be (a damaged JSON column) is logged by its run id and skipped."""
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            query = "SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY rowid"
            fetched = conn.execute(query, (status,) if status else ()).fetchall()
        decoded = []
        for row in fetched:
            try:
                decoded.append(decode(dict(row)))
            except BadRow as exc:
                log.warning("%s: %s; skipped", self.path, exc)
        return decoded

    def status_of(self, run_id: str) -> str | None:
        with self._connect() as conn:
            found = conn.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return found[0] if found else None

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            return dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())


def check_writable_dir(path: Path, option: str) -> None:
    """``path`` must be a writable directory, or creatable as one; ConfigError naming ``option``."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = "" if existing == path else f"cannot create {path}: "
    if not existing.is_dir():
        raise ConfigError(f"{option}: {where}{existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: {where}{existing} is not writable")


def check_results_dir(results_dir: Path) -> None:
    """Refuse, before anything is written, a results path that cannot hold prunebench's files.

    It must be (or be creatable as) a writable directory, and a ``prunebench.db`` already there
    must be a prunebench database: anything else is the user's file and is left untouched.
    """
    check_writable_dir(results_dir, "--results")
    db = results_dir / DB_FILE
    if db.exists() or db.is_symlink():
        check_database(db)
        check_rows(db)


def check_rows(path: Path) -> None:
    """Every row of a current database decodes (read-only); otherwise a DataError naming the first bad one.

    A run would register its plan and then fail reading the rows back; the user decides what a
    damaged row was worth.
    """
    with closing(read_only(path)) as conn:
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return  # an older file is checked row by row while it is migrated
        bad = []
        for row in conn.execute("SELECT * FROM runs ORDER BY rowid"):
            try:
                decode(dict(row))
            except BadRow as exc:
                bad.append(exc)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(
            f"{path}: {bad[0]}{more}; delete the row (sqlite3 {path} \"DELETE FROM runs WHERE run_id='{bad[0].run_id}'\") "
            "to run it again, or choose another --results"
        )


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)


def check_database(path: Path) -> None:
    """An existing database must be prunebench's (its ``runs`` table) or empty; read-only check."""
    if not path.is_file():
        raise DataError(f"{path}: not a prunebench results database (not a regular file)")
    try:
        with closing(read_only(path)) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a prunebench results database ({exc}); move it away or choose another --results") from None
    if tables and "runs" not in tables:
        raise DataError(f"{path}: an SQLite database without prunebench's runs table; move it away or choose another --results")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if tables and missing:
        raise DataError(f"{path}: its runs table is not prunebench's runs table (no {', '.join(missing)} column); "
                        "move it away or choose another --results")


def encode(values: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in values.items()}


class BadRow(DataError):
    """A row whose JSON columns cannot be decoded; ``run_id`` names it."""

    def __init__(self, run_id: str, column: str, exc: BaseException) -> None:
        super().__init__(f"run {run_id}: its {column} column cannot be read ({first_line(exc)})")
        self.run_id = run_id


def decode(row: dict[str, Any]) -> dict[str, Any]:
    """JSON columns parsed; ``result`` as a RunResult. A column that cannot be is a :class:`BadRow`."""
    decoded = dict(row)
    for column in (*JSON_COLUMNS, "result"):
        if decoded.get(column) is None:
            continue
        try:
            decoded[column] = load_result(decoded[column]) if column == "result" else json.loads(decoded[column])
        except UNREADABLE as exc:
            raise BadRow(str(row.get("run_id")), column, exc) from None
    return decoded


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
