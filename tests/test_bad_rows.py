"""A database row that cannot be read is reported by its run id: `results` and `report` skip it,
`run` refuses before registering anything; a database that cannot be migrated, or that only
shares a table name with prunebench's, is refused in one line and left as it was."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.store import ResultsDB

DATA = Path(__file__).parent / "data"
CONFIG = "dataset: synthetic\nmodel: mlp\ntrain: {epochs: 1}\nfinetune: {epochs: 1}\nprune: {strategy: magnitude, compression: 2}\n"


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def results_with_a_bad_row(tmp_path: Path, column: str, value: str) -> tuple[Path, str, int]:
    """The legacy sweep's database, migrated, with ``column`` of one completed run set to ``value``."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(DATA / "legacy-v0.db", results / "prunebench.db")
    rows = ResultsDB(results).rows()
    bad = next(r["run_id"] for r in rows if r["strategy"] == "magnitude")
    with sqlite3.connect(results / "prunebench.db") as conn:
        conn.execute(f"UPDATE runs SET {column}=? WHERE run_id=?", (value, bad))
    conn.close()
    return results, bad, len(rows)


@pytest.mark.parametrize("column, value", [("result", "{not json"), ("result", '{"schema_version": 2}'), ("spec", "[1,")])
def test_results_and_report_skip_a_bad_row_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, column: str, value: str,
) -> None:
    results, bad, count = results_with_a_bad_row(tmp_path, column, value)
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        assert main(["results", "--results", str(results), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + count - 1 and not any(bad in line for line in lines)
    warnings = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(warnings) == 1 and f"{column} column" in warnings[0] and warnings[0].endswith("skipped"), caplog.text
    assert "\n" not in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        assert main(["report", "--results", str(results), "--out", str(tmp_path / "report")]) == 0
    assert bad in caplog.text
    assert (tmp_path / "report" / "report.html").is_file()


def test_run_refuses_a_database_with_a_bad_row_before_registering_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    results, bad, count = results_with_a_bad_row(tmp_path, "result", "{not json")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    before = files_under(results)
    assert main(["run", str(config), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunebench: error:") and err.count("\n") == 1, err
    assert bad in err and "result column" in err
    # nothing registered, no lock file, no run folder (reading a WAL database leaves SQLite's empty -wal/-shm)
    assert {k: v for k, v in files_under(results).items() if not k.endswith(("-wal", "-shm"))} == before


def test_a_version_0_database_that_cannot_migrate_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    db = results / "prunebench.db"
    shutil.copy(DATA / "legacy-v0.db", db)
    with sqlite3.connect(db) as conn:
        bad = conn.execute("SELECT run_id FROM runs WHERE kind='pruned' LIMIT 1").fetchone()[0]
        conn.execute("UPDATE runs SET spec='{not json' WHERE run_id=?", (bad,))
    conn.close()
    before = files_under(results)
    assert main(["results", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunebench: error:") and err.count("\n") == 1, err
    assert str(db) in err and bad in err and "schema version 0" in err
    assert files_under(results) == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


def test_a_foreign_table_named_runs_is_refused_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    results.mkdir()
    db = results / "prunebench.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, distance_km REAL)")
        conn.execute("INSERT INTO runs (distance_km) VALUES (5.2)")
    conn.close()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    before = files_under(results)
    for args in (["run", str(config)], ["results"]):
        assert main([*args, "--results", str(results)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"prunebench: error: {db}:") and err.count("\n") == 1, err
        assert "runs table" in err
        assert files_under(results) == before  # no lock file, no WAL
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
