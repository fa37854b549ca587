"""Workers killed mid-sweep (as the OOM killer would): every run completes exactly once.

The sweep test is benchmarks/sweep_1000.py at a small size: the same command, kills and checks.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

from benchmarks.sweep_1000 import check_exactly_once, run_command, run_sweep, sweep_config
from prunebench.executors import make_executor
from prunebench.plan.sweep import plan_from_mapping
from prunebench.store import ResultsDB


def square(x: int) -> dict[str, int]:
    return {"value": x * x}


def test_a_worker_dying_between_jobs_breaks_neither_this_run_nor_the_next() -> None:
    """A pool whose worker died while no job was waited on refuses new work; the executor starts a fresh one."""
    executor = make_executor("local", workers=2)
    done: dict[int, object] = {}
    started: list[int] = []
    try:
        executor.run([1, 2], square, started.append, done.__setitem__)
        pool = executor._pool  # type: ignore[attr-defined]
        os.kill(next(iter(pool._processes)), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not pool._broken and time.monotonic() < deadline:  # the pool notices the death on its own
            time.sleep(0.05)
        assert pool._broken
        executor.run([3, 4, 5], square, started.append, done.__setitem__)
    finally:
        executor.close()
    assert {job: outcome.status for job, outcome in done.items()} == dict.fromkeys([1, 2, 3, 4, 5], "completed")
    assert {job: outcome.result["value"] for job, outcome in done.items()} == {1: 1, 2: 4, 3: 9, 4: 16, 5: 25}
    assert sorted(started) == [1, 2, 3, 4, 5]  # each started once: no start was counted for the refused submit


@pytest.mark.slow  # a 26-run CLI sweep whose pool is killed and restarted three times, then its rerun
def test_killed_workers_then_a_rerun_complete_every_run_exactly_once(tmp_path: Path) -> None:
    mapping = sweep_config(strategies=["magnitude"], levels=[2, 4, 8, 16], seeds=2)
    config, results = tmp_path / "sweep.yaml", tmp_path / "results"
    config.write_text(yaml.safe_dump(mapping))
    expected = {job.run_id: job.kind for job in plan_from_mapping(mapping).jobs}
    assert len(expected) == 26
    command = run_command(config, results, "local", 2)
    rng = random.Random(0)
    first = run_sweep(command, results, tmp_path / "log", "local", [4, 11, 19], rng, timeout_s=600)
    assert len(first.kills) == 3, (tmp_path / "log").read_text()[-3000:]
    assert all(kill.in_flight for kill in first.kills)  # each kill took at least one run down with it
    second = run_sweep(command, results, tmp_path / "log", "local", [], rng, timeout_s=600)
    assert second.returncode == 0, (tmp_path / "log").read_text()[-3000:]

    once, problems = check_exactly_once(results, expected, first, second)
    assert problems == []
    assert once == 26
    rows = ResultsDB(results).rows()
    assert sorted(r["run_id"] for r in rows) == sorted(expected)
    assert {r["status"] for r in rows} == {"completed"}
    killed = {run_id for kill in first.kills for run_id in kill.in_flight}
    assert any(r["attempts"] > 1 for r in rows if r["run_id"] in killed)  # the killed runs were started again
    assert all(r["attempts"] == 1 for r in rows if r["run_id"] not in killed and r["run_id"] in first.rows
               and first.rows[r["run_id"]]["status"] == "completed")


# --- what the 1,000-run database made faster, unchanged -------------------------------------------

def test_the_cached_t_quantile_is_scipys() -> None:
    from scipy import stats as scipy_stats

    from prunebench.report.stats import estimate, t_quantile

    for df in (1, 2, 4, 9, 29, 200):
        assert t_quantile(df) == float(scipy_stats.t.ppf(0.975, df))
    e = estimate([0.5, 0.7, 0.6])
    half = float(scipy_stats.t.ppf(0.975, 2)) * e.std / 3 ** 0.5
    assert (e.ci_low, e.ci_high) == (e.mean - half, e.mean + half)


def test_results_rows_show_each_varying_spec_key_from_each_rows_own_spec(tmp_path: Path) -> None:
    from prunebench.plan.runner import run_plan
    from prunebench.report.results import results_rows

    plan = plan_from_mapping({"dataset": "synthetic", "model": "mlp", "threads": 1, "baselines": False,
                              "train": {"epochs": 1, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64},
                              "sweep": {"finetune.lr": [0.01, 0.02], "prune.compression": [2, 4]}})
    run_plan(plan, tmp_path, make_executor("serial"), live=False)
    rows = results_rows(tmp_path)
    assert len(rows) == 5 and [k for k in rows[0] if k == "finetune.lr"] == ["finetune.lr"]
    by_id = {job.run_id: job for job in plan.jobs}
    for row in rows:
        job = by_id[row["run_id"]]
        if job.kind == "pruned":
            assert row["finetune.lr"] == job.spec.finetune.lr
            assert row["target_value"] == job.spec.prune.compression
    assert sorted(row["finetune.lr"] for row in rows if by_id[row["run_id"]].kind == "pruned") == [0.01, 0.01, 0.02, 0.02]


def test_flatten_writes_every_value_as_json_dumps_does() -> None:
    import json
    import math

    from prunebench.report.aggregate import flatten

    values = ["layer", "", "quote \" and \\ and \n", "café ünïcode", "\u2028", 0, -3, 2**70, True, False, None,
              0.1, -0.0, 1e-300, 1e300, 2.5, math.nan, math.inf, -math.inf, [1, "a", None], [], {},
              {"b": 1, "a": [2.0]}, (1, 2)]
    spec = {"k": {str(i): v for i, v in enumerate(values)}}
    flat = flatten(spec)
    for i, value in enumerate(values):
        key = f"k.{i}"
        if isinstance(value, dict) and value:
            assert flat["k.22.a"] == json.dumps([2.0]) and flat["k.22.b"] == "1"
        else:
            assert flat[key] == json.dumps(value, sort_keys=True), value
