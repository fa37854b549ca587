"""The results database under concurrent writers."""

import multiprocessing
from pathlib import Path

import pytest

from prunebench.record import Accuracy, Macs, Provenance, RunResult, Sizes, Timings
from prunebench.store import ResultsDB


def record(run_id: str, top1: float) -> RunResult:
    """A minimal record: the store only keeps it."""
    sizes = Sizes(params_total=2, params_nonzero=1, prunable_total=2, prunable_nonzero=1, compression_ratio=2.0,
                  prunable_compression_ratio=2.0, sparsity=0.5)
    return RunResult(
        run_id=run_id, dense_id="d", spec={}, sizes=sizes, macs=Macs(dense=2, effective=1, theoretical_speedup=2.0),
        accuracy=Accuracy(top1=top1, top5=top1, dense_top1=top1), timings=Timings(wall=0.0), provenance=Provenance(),
    )

WRITERS = 8
ROWS = 50


def write_rows(results_dir: Path, writer: int) -> None:
    db = ResultsDB(results_dir)
    for i in range(ROWS):
        run_id = f"w{writer}-r{i}"
        db.register({"run_id": run_id, "kind": "pruned", "spec": {"writer": writer, "i": i}})
        db.mark_running(run_id)
        db.finish(run_id, "completed", record(run_id, i / ROWS))


@pytest.mark.slow  # eight spawned processes, each importing torch
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    ResultsDB(tmp_path)  # create the schema once, as a sweep does
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=write_rows, args=(tmp_path, w)) for w in range(WRITERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=600)  # a guard against a hang, not a timing: spawning eight torch imports is slow on a loaded machine
        assert p.exitcode == 0
    rows = ResultsDB(tmp_path).rows()
    assert len(rows) == WRITERS * ROWS
    assert {r["run_id"] for r in rows} == {f"w{w}-r{i}" for w in range(WRITERS) for i in range(ROWS)}
    assert all(r["status"] == "completed" and r["attempts"] == 1 for r in rows)
    assert all(r["result"].accuracy.top1 == int(r["run_id"].split("-r")[1]) / ROWS for r in rows)


def test_register_keeps_existing_status(tmp_path: Path) -> None:
    db = ResultsDB(tmp_path)
    db.register({"run_id": "a", "kind": "pruned", "spec": {}})
    db.mark_running("a")
    db.finish("a", "completed", record("a", 0.5))
    db.register({"run_id": "a", "kind": "pruned", "spec": {}})
    assert db.status_of("a") == "completed" and db.counts() == {"completed": 1}
