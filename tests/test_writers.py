"""One writer per results directory, results paired with their dense weights, artifacts checked."""

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prunebench.spec import ExperimentSpec, PruneSpec, RunSettings, TrainSpec
from prunebench.executors import make_executor
from prunebench.experiment import run_experiment
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.report import write_report
from prunebench.report.aggregate import build_groups
from prunebench.report.results import format_results, mark_dense_checks, results_rows
from prunebench.store import ResultsDB
from prunebench.store.artifacts import load_tensors, save_tensors
from prunebench.store.lock import LOCK_FILE, results_lock

SWEEP = {
    "dataset": "synthetic",
    "model": "mlp",
    "train": {"epochs": 3, "lr": 0.05, "batch_size": 64},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
    "sweep": {"prune.strategy": ["magnitude"], "prune.compression": [2, 4], "seed": [0, 1]},
}
TRAIN = TrainSpec(epochs=2, lr=0.05, batch_size=64)
FINETUNE = TrainSpec(epochs=1, lr=0.01, batch_size=64)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec(compression: float = 4) -> ExperimentSpec:
    return ExperimentSpec(
        dataset="synthetic", model="mlp", train=TRAIN, finetune=FINETUNE,
        prune=PruneSpec(strategy="magnitude", compression=compression),
    )


def dense_model(results: Path, s: ExperimentSpec) -> Path:
    return results / "dense" / s.dense_spec().content_hash() / "model.pt"


@pytest.mark.slow  # two CLI sweeps in subprocesses at once, one on two spawned workers
def test_two_runs_on_one_results_directory_wait_and_pair_every_result_with_its_dense_checkpoint(
    tmp_path: Path,
) -> None:
    """Different thread counts train slightly different dense weights: only one may be stored."""
    results = tmp_path / "results"
    commands = []
    for threads, executor in ((1, "local"), (2, "serial")):
        config = tmp_path / f"threads{threads}.yaml"
        config.write_text(yaml.safe_dump({**SWEEP, "threads": threads}))
        commands.append([
            sys.executable, "-m", "prunebench.cli", "run", str(config), "--results", str(results),
            "--executor", executor, "--workers", "2",
        ])
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert any("waiting for it to finish" in err for _, err in outputs)  # the second one said it waited

    rows = ResultsDB(results).rows()
    assert len(rows) == 2 * 2 * 2 + 2  # magnitude and its random control, 2 levels, 2 seeds; 2 dense rows
    assert all(r["status"] == "completed" for r in rows)
    assert [r["attempts"] for r in rows] == [1] * len(rows)  # the second run redid nothing
    dense_rows = {r["dense_id"]: r for r in rows if r["kind"] == "dense"}
    for row in rows:
        checkpoint = results / "dense" / row["dense_id"] / "model.pt"
        assert row["result"].dense_sha256 == sha256(checkpoint)
        assert row["result"].accuracy.dense_top1 == dense_rows[row["dense_id"]]["result"].accuracy.top1
        if row["kind"] == "pruned":
            on_disk = json.loads((results / row["run_id"] / "result.json").read_text())
            assert on_disk["dense_sha256"] == sha256(checkpoint)
    for dense_id in dense_rows:
        info = json.loads((results / "dense" / dense_id / "dense.json").read_text())
        assert info["model_sha256"] == sha256(results / "dense" / dense_id / "model.pt")


def test_a_killed_lock_holder_never_blocks_the_next_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hold = (
        "import sys, time; from pathlib import Path; from prunebench.store.lock import results_lock\n"
        "with results_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        owner = json.loads((tmp_path / LOCK_FILE).read_text())
        assert owner["pid"] == holder.pid
        killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(1.5); os.kill({holder.pid}, 9)"])
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="prunebench"), results_lock(tmp_path):
            waited = time.monotonic() - started
        killer.wait(timeout=30)
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert 1.0 < waited < 30
    assert f"held by pid {holder.pid} on " in caplog.text
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released: no stale owner left for the next waiter


def test_planted_result_without_its_tensors_is_not_accepted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = spec()
    planted = tmp_path / s.run_id / "result.json"
    planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({"run_id": s.run_id, "compression_ratio": 100.0, "top1": 0.99}))
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        result = run_experiment(s, RunSettings(), tmp_path)
    assert str(planted) in caplog.text and "mask.pt and model.pt missing" in caplog.text
    assert 3.5 < result.sizes.compression_ratio < 4.5  # the real one, target 4
    assert json.loads(planted.read_text())["sizes"]["compression_ratio"] == result.sizes.compression_ratio
    assert (planted.parent / "mask.pt").is_file() and (planted.parent / "model.pt").is_file()


def test_result_of_another_run_is_not_accepted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first, second = spec(2), spec(4)
    run_experiment(first, RunSettings(), tmp_path)
    os.rename(tmp_path / first.run_id, tmp_path / second.run_id)  # a whole folder, filed under the wrong id
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        result = run_experiment(second, RunSettings(), tmp_path)
    assert f"names run '{first.run_id}', not {second.run_id}" in caplog.text
    assert result.run_id == second.run_id and 3.5 < result.sizes.compression_ratio < 4.5


def test_truncated_result_json_is_redone_on_the_next_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = spec()
    first = run_experiment(s, RunSettings(), tmp_path)
    path = tmp_path / s.run_id / "result.json"
    path.write_bytes(path.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        again = run_experiment(s, RunSettings(), tmp_path)
    assert f"ignoring {path}: not readable JSON" in caplog.text
    assert json.loads(path.read_text())["run_id"] == s.run_id
    assert (again.sizes.compression_ratio, again.accuracy.top1) == (first.sizes.compression_ratio, first.accuracy.top1)


@pytest.mark.parametrize("damage", ["empty model.pt", "garbage dense.json", "model.pt replaced"])
def test_damaged_dense_checkpoint_is_retrained_not_failed_forever(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    run_experiment(spec(2), RunSettings(), tmp_path)
    model_pt = dense_model(tmp_path, spec(2))
    dense_json = model_pt.parent / "dense.json"
    if damage == "empty model.pt":
        model_pt.write_bytes(b"")
    elif damage == "garbage dense.json":
        dense_json.write_text('{"test_top1": 0.9')
    else:  # loads fine, but is not the file dense.json describes
        save_tensors(model_pt, {k: v + 1 for k, v in load_tensors(model_pt).items()})
    named = dense_json if damage == "garbage dense.json" else model_pt
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        result = run_experiment(spec(4), RunSettings(), tmp_path)  # a new run of the same dense model
    assert f"ignoring {named}" in caplog.text
    assert not result.provenance.dense_cached
    info = json.loads(dense_json.read_text())
    assert info["model_sha256"] == sha256(model_pt) == result.dense_sha256
    assert result.accuracy.dense_top1 == info["test_top1"]
    load_tensors(model_pt)


def test_results_and_report_flag_results_pruned_from_other_dense_weights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    plan = plan_from_mapping({**SWEEP, "threads": 1, "sweep": {"prune.compression": [2, 4]}, "baselines": False})
    assert run_plan(plan, results, make_executor("serial"), live=False)["completed"] == 3
    clean = results_rows(results)
    assert {r["dense_check"] for r in clean} == {"ok"}
    assert "dense_check" in format_results(clean, "text").splitlines()[0]

    model_pt = results / "dense" / ResultsDB(results).rows()[0]["dense_id"] / "model.pt"
    save_tensors(model_pt, {k: v * 1.01 for k, v in load_tensors(model_pt).items()})
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        flagged = results_rows(results)
    assert {r["dense_check"] for r in flagged} == {"mismatch"}
    assert "3 result(s) were computed from dense weights that are no longer the checkpoint" in caplog.text
    assert "mismatch" in format_results(flagged, "csv")

    rows = ResultsDB(results).rows()
    assert mark_dense_checks(results, rows) == [r["run_id"] for r in rows]
    assert build_groups(rows) == []  # every point was paired with weights no longer on disk
    page = write_report(results, tmp_path / "report").read_text()
    assert "3 completed run(s) left out: their recorded dense_sha256" in page


def test_a_result_recording_no_dense_digest_is_shown_unflagged(tmp_path: Path) -> None:
    results = tmp_path / "results"
    plan = plan_from_mapping({**SWEEP, "threads": 1, "sweep": {"prune.compression": [2]}, "baselines": False})
    run_plan(plan, results, make_executor("serial"), live=False)
    db = ResultsDB(results)
    for row in db.rows():  # as written before results recorded their dense weights
        db.finish(row["run_id"], "completed", row["result"].model_copy(update={"dense_sha256": None}))
    assert [r["dense_check"] for r in results_rows(results)] == [None, None]
    rows = db.rows()
    assert mark_dense_checks(results, rows) == []
    assert len(build_groups(rows)) == 1  # kept in the report


def test_rerun_repairs_damaged_artifacts_of_completed_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A completed row counts only while its files are whole: a rerun redoes what was damaged."""
    results = tmp_path / "results"
    plan = plan_from_mapping({**SWEEP, "threads": 1, "sweep": {"prune.compression": [2, 4], "seed": [0, 1]}, "baselines": False})
    run = lambda: run_plan(plan, results, make_executor("serial"), live=False)  # noqa: E731
    assert run()["completed"] == 6
    rows = ResultsDB(results).rows()
    dense0 = next(r for r in rows if r["kind"] == "dense" and r["seed"] == 0)
    lost_mask = next(r for r in rows if r["kind"] == "pruned" and r["seed"] == 1)
    (results / "dense" / dense0["dense_id"] / "model.pt").write_bytes(b"")
    (results / lost_mask["run_id"] / "mask.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        assert run()["completed"] == 6
    assert f"{lost_mask['run_id']}/result.json: mask.pt missing beside it" in caplog.text
    redone = {r["run_id"] for r in rows if r["dense_id"] == dense0["dense_id"]} | {lost_mask["run_id"]}
    after = ResultsDB(results).rows()
    assert {r["run_id"]: r["attempts"] for r in after} == {r["run_id"]: 2 if r["run_id"] in redone else 1 for r in rows}
    assert {r["dense_check"] for r in results_rows(results)} == {"ok"}


def forge(path: Path, change: dict[str, object]) -> None:
    data = json.loads(path.read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            del node[key]
        else:
            node[key] = value
    path.write_text(json.dumps(data))


FORGERIES = {
    # every count made to agree with 100x: only the tensors beside it can tell
    "consistent 100x": {"sizes.params_nonzero": None, "sizes.compression_ratio": 100.0, "accuracy.top1": 0.9999},
    "compression alone": {"sizes.compression_ratio": 100.0},
    "fewer kept weights": {"sizes.prunable_nonzero": 1, "sizes.sparsity": None},
    "no dense digest": {"dense_sha256": None},
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_result_beside_its_real_tensors_is_redone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, forgery: str,
) -> None:
    s = spec()
    first = run_experiment(s, RunSettings(), tmp_path)
    path = tmp_path / s.run_id / "result.json"
    change = dict(FORGERIES[forgery])
    if "sizes.params_nonzero" in change:
        change["sizes.params_nonzero"] = first.sizes.params_total // 100
    if "sizes.sparsity" in change:
        change["sizes.sparsity"] = 1 - 1 / first.sizes.prunable_total
        change["sizes.prunable_compression_ratio"] = float(first.sizes.prunable_total)
    forge(path, change)
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        again = run_experiment(s, RunSettings(), tmp_path)
    assert f"ignoring {path}:" in caplog.text, caplog.text
    assert (again.sizes.compression_ratio, again.accuracy.top1, again.dense_sha256) == (
        first.sizes.compression_ratio, first.accuracy.top1, first.dense_sha256)
    assert json.loads(path.read_text())["sizes"]["compression_ratio"] == first.sizes.compression_ratio


def test_a_database_rebuilt_from_the_folder_never_shows_forged_figures(tmp_path: Path) -> None:
    plan = plan_from_mapping({**{k: v for k, v in SWEEP.items() if k != "sweep"},
                              "prune": {"strategy": "magnitude", "compression": 4}})
    run_plan(plan, tmp_path, make_executor("serial"))
    real = {r["run_id"]: r["result"] for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"}
    for run_id, result in real.items():
        forge(tmp_path / run_id / "result.json", {"sizes.params_nonzero": result.sizes.params_total // 100,
                                                  "sizes.compression_ratio": 100.0, "accuracy.top1": 0.9999})
    (tmp_path / "prunebench.db").unlink()
    run_plan(plan, tmp_path, make_executor("serial"))
    rebuilt = {r["run_id"]: r["result"] for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"}
    assert {k: (v.sizes.compression_ratio, v.accuracy.top1) for k, v in rebuilt.items()} == {
        k: (v.sizes.compression_ratio, v.accuracy.top1) for k, v in real.items()}
