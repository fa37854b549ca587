"""The SLURM executor through submitit's local executor: outcomes, a killed task resubmitted once,
refusals before anything is written, and a sweep that resumes."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest
import yaml

from prunebench.cli import main
from prunebench.errors import ConfigError, TrainingDiverged
from prunebench.executors import Outcome, SlurmSettings, make_executor
from prunebench.executors.slurm import SlurmExecutor
from prunebench.store import ResultsDB

pytest.importorskip("submitit")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(autouse=True)
def tasks_find_this_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's local tasks are fresh Python processes: they unpickle this module's job
    functions by name, so they need its folder on their path (a cluster's tasks import a
    plugin or prunebench itself, installed)."""
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))


def square(x: int) -> dict[str, int]:
    return {"value": x * x}


def fails(x: int) -> dict[str, int]:
    if x == 2:
        raise TrainingDiverged("loss became nan")
    raise ValueError(f"bad {x}")


def dies_once(marker_dir: Path, x: int) -> dict[str, int]:
    """Killed by SIGKILL on its first attempt (as an OOM kill or a lost node would end it)."""
    marker = marker_dir / f"attempted-{x}"
    if not marker.exists():
        marker.write_text("")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"value": x}


def always_dies(x: int) -> dict[str, int]:
    os.kill(os.getpid(), signal.SIGKILL)
    return {"value": x}


def collect(tmp_path: Path, fn, jobs: list[int], workers: int = 2) -> tuple[list[int], dict[int, Outcome]]:
    started: list[int] = []
    done: dict[int, Outcome] = {}
    # tiny jobs: the driver looks at them more often than it would on a cluster
    executor = SlurmExecutor(folder=tmp_path / "jobs", workers=workers, cluster="local", poll_s=0.2)
    try:
        executor.run(jobs, fn, started.append, done.__setitem__)
    finally:
        executor.close()
    return started, done


def test_runs_every_job_and_captures_failures_as_the_other_executors_do(tmp_path: Path) -> None:
    started, done = collect(tmp_path, square, [1, 2, 3])
    assert sorted(started) == [1, 2, 3]
    assert {k: (o.status, o.result) for k, o in done.items()} == {
        1: ("completed", {"value": 1}), 2: ("completed", {"value": 4}), 3: ("completed", {"value": 9})}
    _, failed = collect(tmp_path, fails, [1, 2])
    assert failed[2] == Outcome("diverged", error="loss became nan")
    assert failed[1].status == "failed" and failed[1].error is not None
    assert failed[1].error.startswith("ValueError: bad 1 (test_slurm.py:")


@pytest.mark.slow  # fresh Python processes importing torch, one killed on purpose
def test_a_killed_task_is_submitted_again_once(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    started, done = collect(tmp_path, functools.partial(dies_once, markers), [5, 6])
    assert sorted(started) == [5, 6]  # a resubmission is not a second start
    assert {k: (o.status, o.result) for k, o in done.items()} == {5: ("completed", {"value": 5}), 6: ("completed", {"value": 6})}
    assert sorted(p.name for p in markers.iterdir()) == ["attempted-5", "attempted-6"]


@pytest.mark.slow  # fresh Python processes importing torch, one killed on purpose
def test_a_task_killed_again_is_a_failed_run_with_one_line(tmp_path: Path) -> None:
    _, done = collect(tmp_path, always_dies, [7], workers=1)
    assert done[7].status == "failed" and done[7].error is not None
    assert "ended without a result after 2 attempts" in done[7].error and "\n" not in done[7].error


def test_bad_settings_are_refused_in_one_line(tmp_path: Path) -> None:
    local = SlurmSettings(folder=tmp_path / "jobs", cluster="local")
    with pytest.raises(ConfigError, match="whole number"):
        make_executor("slurm", slurm=local, gpus_per_run=0.5)
    with pytest.raises(ConfigError, match="--slurm-time must be >= 1"):
        make_executor("slurm", slurm=SlurmSettings(folder=tmp_path, time_min=0, cluster="local"))
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        make_executor("slurm", workers=0, slurm=local)
    assert not (tmp_path / "jobs").exists()


def sweep_config(tmp_path: Path) -> Path:
    base = yaml.safe_load((CONFIGS / "digits-mlp.yaml").read_text())
    base.update({"threads": 1, "train": {**base.get("train", {}), "epochs": 2},
                 "finetune": {"epochs": 1}, "sweep": {"prune.compression": [2, 8]}})
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(base))
    return config


def test_no_sbatch_is_one_line_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    results = tmp_path / "results"
    assert main(["run", str(sweep_config(tmp_path)), "--results", str(results), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch not found" in err[0] and "--slurm-cluster local" in err[0]
    assert not results.exists()


@pytest.mark.slow  # every task a fresh Python importing torch: a minute or more on busy cores
def test_a_sweep_runs_through_slurm_and_a_rerun_resumes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    command = ["-q", "run", str(sweep_config(tmp_path)), "--results", str(results), "--executor", "slurm",
               "--slurm-cluster", "local", "--workers", "2"]
    assert main(command) == 0
    rows = ResultsDB(results).rows()
    assert rows and all(r["status"] == "completed" for r in rows)
    written = {p: p.stat().st_mtime_ns for p in results.rglob("result.json")}
    assert main(command) == 0  # the same command again: every run is found done, none rerun
    assert {p: p.stat().st_mtime_ns for p in results.rglob("result.json")} == written
    assert len(ResultsDB(results).rows()) == len(rows)
