"""The GPU check's dry run: every part, end to end on the CPU, into one JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # runs every part of the GPU check's dry run in subprocesses
def test_the_dry_run_writes_every_part_into_one_json_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--results", str(tmp_path / "r"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed"] == {} and report["environment"]["dry_run"] is True
    parts = report["parts"]
    assert list(parts) == ["data", "comparison", "latency", "sparse"]  # the default parts
    assert all(report["wall_s"][p] > 0 for p in parts) and report["wall_s"]["total"] >= sum(report["wall_s"][p] for p in parts)

    data = parts["data"]
    assert data["batches_compared"] == 2 and data["batches_identical"] == 2  # 2 steps an epoch, both identical
    assert data["host_epoch_s"] > 0 and data["device_epoch_s"] > 0

    comparison = parts["comparison"]
    assert comparison["dense"]["recipe"]["nesterov"] and comparison["dense"]["recipe"]["channels_last"]
    assert comparison["dense"]["reached_target"] is None  # synthetic data: no claim about CIFAR-10
    runs = {(r["strategy"], r["target"]["value"]): r for r in comparison["runs"]}
    assert set(runs) == {("magnitude", 4.0), ("random", 4.0), ("magnitude", 16.0), ("random", 16.0),
                         ("l1_filter", 2.0), ("random_channel", 2.0)}
    assert runs[("magnitude", 16.0)]["compression"] == pytest.approx(16.0, rel=1e-3)
    assert runs[("l1_filter", 2.0)]["theoretical_speedup"] >= 2.0
    assert runs[("random", 4.0)]["control_of"] == "magnitude" and runs[("random_channel", 2.0)]["control_of"] == "l1_filter"
    assert len(list((tmp_path / "r").glob("*/result.json"))) == 6  # every run went through the pipeline

    rows = parts["latency"]["rows"]
    eager = {(r["model"], r["dtype"]): r for r in rows if not r["compiled"]}
    assert set(eager) == {(m, d) for m in ("dense", "l1_filter", "random_channel") for d in ("float32", "bfloat16")}
    assert all(r["median_ms"] > 0 for r in eager.values())
    assert eager[("l1_filter", "float32")]["params"] < eager[("dense", "float32")]["params"]  # compacted
    assert all(r["skipped"] == "dry run: compile off" for r in rows if r["compiled"])

    sparse = parts["sparse"]
    layers = [r["layer"] for r in sparse["linears"]]
    assert layers == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] * 2
    assert all(r["dense"]["median_ms"] > 0 and "only on CUDA" in r["skipped"] for r in sparse["linears"])
    assert [r["dtype"] for r in sparse["prefill"]] == ["float16", "bfloat16"]
    assert all(r["dense"]["median_ms"] > 0 and "only on CUDA" in r["skipped"] for r in sparse["prefill"])
    assert "dense:" in done.stdout and str(out) in done.stdout


@pytest.mark.slow  # its compile mode builds ResNet-20's kernels on the CPU: minutes on busy cores
def test_the_dry_run_times_every_training_mode(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--parts", "modes", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    modes = json.loads(out.read_text())["parts"]["modes"]
    assert [m["mode"] for m in modes] == ["fp32", "bf16", "fp16", "channels-last", "compile"]
    assert all(m["first_epoch_s"] > 0 and m["epoch_s"] > 0 for m in modes) and modes[0]["speedup_vs_fp32"] == 1.0


def test_the_parts_are_checked_before_anything_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--parts", "latency", "--out",
                           str(tmp_path / "x.json")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "--parts: latency times the comparison's compacted models" in done.stderr
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--parts", "data,speed"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "unknown part 'speed'" in done.stderr
    assert not (tmp_path / "x.json").exists()


def test_two_four_keeps_the_two_largest_of_every_four() -> None:
    sys.path.insert(0, str(REPO))
    import torch

    from benchmarks.gpu_check import two_four

    weight = torch.tensor([[0.1, -3.0, 2.0, 0.5, 4.0, 0.0, -0.2, 1.0]])
    assert torch.equal(two_four(weight), torch.tensor([[0.0, -3.0, 2.0, 0.0, 4.0, 0.0, 0.0, 1.0]]))
    pruned = two_four(torch.randn(16, 32))
    assert ((pruned.reshape(16, 8, 4) != 0).sum(-1) <= 2).all()


def test_without_a_gpu_it_says_so() -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("gpu_check: torch ") and "sees no CUDA GPU" in done.stderr
