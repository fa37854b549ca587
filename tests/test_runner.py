"""Sweeps end to end: executors, resuming, failure isolation, results and report."""

import json
import os
import re
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prunebench.cli import main
from prunebench.executors import make_executor
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.report import write_report
from prunebench.report.results import metrics
from prunebench.store import ResultsDB

SWEEP = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 64},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
    "sweep": {"prune.strategy": ["magnitude", "grad_magnitude"], "prune.compression": [2, 8], "seed": [0, 1]},
}
METRICS = ("compression_ratio", "theoretical_speedup", "params_nonzero", "macs_effective", "dense_top1", "pre_retrain_top1", "top1", "top5")


def metrics_by_run(results: Path) -> dict[str, tuple]:
    return {r["run_id"]: tuple(metrics(r["result"])[m] for m in METRICS) for r in ResultsDB(results).rows()}


@pytest.mark.slow  # the whole demo, 63 runs on spawned workers, and its rerun
def test_digits_sweep_with_local_executor_then_resume_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo: 3 strategies x 5 levels x 3 seeds on digits (+ random and dense), local executor."""
    results = tmp_path / "demo"
    assert main(["-q", "demo", "--results", str(results), "--executor", "local"]) == 0
    rows = ResultsDB(results).rows()
    assert len(rows) == 4 * 5 * 3 + 3 and all(r["status"] == "completed" for r in rows)
    assert "report.html" in capsys.readouterr().out
    dense_models = sorted((results / "dense").glob("*/model.pt"))
    assert len(dense_models) == 3
    stamps = {p: p.stat().st_mtime_ns for p in dense_models}
    assert main(["-q", "demo", "--results", str(results), "--executor", "local"]) == 0
    again = ResultsDB(results).rows()
    assert [(r["run_id"], r["attempts"], r["finished_at"]) for r in again] == [
        (r["run_id"], r["attempts"], r["finished_at"]) for r in rows
    ]
    assert {p: p.stat().st_mtime_ns for p in dense_models} == stamps


@pytest.mark.slow  # a sweep in a subprocess killed partway, then rerun to the end in another
def test_sigkill_partway_then_rerun_completes_every_run_exactly_once(tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "train": {**SWEEP["train"], "epochs": 6}}))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "prunebench.cli", "-q", "run", str(config), "--results", str(results), "--executor", "serial"]
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (results / "prunebench.db").is_file() and ResultsDB(results).counts().get("completed", 0) >= 4:
            break
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = {r["run_id"]: r for r in ResultsDB(results).rows()}
    done_before = {k for k, r in before.items() if r["status"] == "completed"}
    assert 4 <= len(done_before) < len(before), "the sweep must be killed partway"
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    after = {r["run_id"]: r for r in ResultsDB(results).rows()}
    assert after.keys() == before.keys()
    assert all(r["status"] == "completed" for r in after.values())
    for run_id in done_before:  # finished runs were not run again
        assert after[run_id]["attempts"] == 1 and after[run_id]["finished_at"] == before[run_id]["finished_at"]
    run_dirs = [p for p in results.iterdir() if (p / "result.json").is_file()]
    assert len(run_dirs) == sum(1 for r in after.values() if r["kind"] == "pruned")


def test_failures_are_isolated_and_the_exit_status_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "baselines": False, "sweep": {"finetune.lr": [0.01, 1.0e6]}}))
    code = main(["-q", "run", str(config), "--results", str(tmp_path / "r"), "--executor", "serial"])
    assert code == 1
    statuses = sorted(r["status"] for r in ResultsDB(tmp_path / "r").rows())
    assert statuses == ["completed", "completed", "diverged"]  # dense, the sane run, the diverged one
    assert "loss became" in capsys.readouterr().out


@pytest.mark.slow  # a sweep run twice, in a process pool and serially
def test_local_executor_matches_serial(tmp_path: Path) -> None:
    plan = plan_from_mapping({**SWEEP, "sweep": {"prune.strategy": ["magnitude"], "prune.compression": [4], "seed": [0]}})
    for name in ("serial", "local"):
        run_plan(plan, tmp_path / name, make_executor(name, workers=2), live=False)
    assert metrics_by_run(tmp_path / "serial") == metrics_by_run(tmp_path / "local")


@pytest.mark.slow  # starts a private Ray with two workers
def test_ray_executor_matches_serial(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    plan = plan_from_mapping({**SWEEP, "sweep": {"prune.strategy": ["magnitude"], "prune.compression": [4], "seed": [0, 1]}})
    run_plan(plan, tmp_path / "serial", make_executor("serial"), live=False)
    try:
        statuses = run_plan(plan, tmp_path / "ray", make_executor("ray", workers=2), live=False)
    finally:
        ray.shutdown()
    assert statuses["completed"] == len(plan.jobs)
    assert metrics_by_run(tmp_path / "serial") == metrics_by_run(tmp_path / "ray")


def test_results_command_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_from_mapping({**SWEEP, "sweep": {"prune.compression": [2, 4]}})
    run_plan(plan, tmp_path, make_executor("serial"), live=False)
    assert main(["results", "--results", str(tmp_path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5  # dense + magnitude and random at two levels
    required = {"run_id", "status", "dataset", "model", "strategy", "scope", "target_kind", "target_value", "seed",
                "dense_recipe", "retrain_recipe", "compression_ratio", "theoretical_speedup", "params_total",
                "params_nonzero", "macs_dense", "macs_effective", "dense_top1", "pre_retrain_top1", "top1", "top5",
                "wall_time_s"}
    assert all(required <= set(r) for r in rows)
    assert main(["results", "--results", str(tmp_path), "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert len(csv_lines) == 6 and csv_lines[0].startswith("run_id,status,role,dataset")
    assert main(["results", "--results", str(tmp_path)]) == 0
    assert "magnitude" in capsys.readouterr().out
    assert main(["results", "--results", str(tmp_path / "none")]) == 2


def test_report_files_and_html_rendered_in_a_real_browser(tmp_path: Path) -> None:
    plan = plan_from_mapping({**SWEEP, "controls": ["random", "layer-shuffle"],
                              "sweep": {"prune.compression": [2, 4, 8], "seed": [0, 1]}})
    run_plan(plan, tmp_path / "r", make_executor("serial"), live=False)
    html_path = write_report(tmp_path / "r", tmp_path / "out")
    files = {p.name for p in (tmp_path / "out").iterdir()}
    for kind in ("levels", "paired", "summary"):
        assert {f"synthetic-mlp-{kind}.{ext}" for ext in ("md", "csv", "tex")} <= files
    for kind in ("top1", "provenance", "controls", "cost", "matched-speedup"):
        assert {f"synthetic-mlp-{kind}.{ext}" for ext in ("md", "csv", "tex")} <= files
    figures = ("top1-vs-compression", "top1-drop-vs-compression", "top1-vs-speedup", "pre-retrain-top1", "top1-vs-trainability",
               "layer-density")
    assert {f"synthetic-mlp-{kind}.png" for kind in figures} <= files
    page = html_path.read_text()
    assert "VIOLATED: at least 5 compression levels" in page and "VIOLATED: at least 3 seeds" in page
    assert "PASS: random-pruning control" in page and "src=\"http" not in page
    # What a reviewer needs: the recipe, the versions, the dense size, a strategies x levels table.
    assert "recipe and provenance" in page and "retraining recipe" in page and "epochs 1, lr 0.01" in page
    assert "torch " in page and "dense parameters" in page and "dense MACs per example" in page
    assert "<th>strategy</th><th>setting</th><th>2x</th><th>4x</th><th>8x</th>" in page
    assert "no significant difference (n = 2)" in page and "p (Holm)" in page and "no difference<" not in page
    assert "each method against its own sanity controls" in page and "magnitude layer-shuffle" in page
    assert "what each method cost" in page and "matched theoretical speedup" in page
    # Which published recommendations the comparison meets, beside the checklist and in its own file.
    # The answer first (main figure and one number per curve), then tables, then checklist and recommendations.
    assert page.index('data-part="answer"') < page.index("<figure>") < page.index("one number per curve") \
        < page.index('data-part="tables"') < page.index("Reporting checklist") < page.index('<section class="guidance">')
    assert "NOT MET: several seeds with their spread — It does not report spread over enough seeds" in page
    assert "NOT MET: ranking checked across fine-tuning recipes" in page and 'class="pass">MET: random and magnitude baselines' in page
    assert "VIOLATED: layer-shuffle and reinit controls present for every method — missing: reinit of magnitude" in page
    assert "PASS: trainability after pruning reported" in page and "PASS: cost of pruning reported" in page
    guidance = (tmp_path / "out" / "synthetic-mlp-guidance.md").read_text()
    assert "Does not meet:" in guidance and "- VIOLATED: at least 5 compression levels" in guidance
    unmet = page.count('class="fail">NOT MET')
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", html_path.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert 'data-figures-rendered="6/6"' in dom
    assert dom.count('data-rendered="true"') == 6 and 'data-rendered="false"' not in dom
    assert 'data-order="answer,figures,tables,checklist,definitions"' in dom
    assert re.search(rf'data-guidance="1 comparison\(s\), {unmet} not met"', dom) and unmet >= 4
