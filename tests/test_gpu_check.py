"""The GPU check script's dry run: every training mode and both pruning strategies, end to end on the CPU."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # its compile mode builds ResNet-20's kernels on the CPU: a minute or more on busy cores
def test_the_dry_run_prints_every_mode_and_strategy(tmp_path: Path) -> None:
    table = tmp_path / "gpu.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--results", str(tmp_path / "r"), "--markdown", str(table)],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = table.read_text()
    assert done.stdout == text
    modes = re.findall(r"^\| (fp32|bf16|fp16|channels-last|compile) \| (\d+\.\d+) \| (\d+\.\d+) \| (\d+\.\d+)x \|", text, re.M)
    assert [m[0] for m in modes] == ["fp32", "bf16", "fp16", "channels-last", "compile"]
    assert all(float(first) > 0 and float(epoch) > 0 for _, first, epoch, _ in modes)
    assert modes[0][3] == "1.00"  # fp32 is the reference
    pruned = re.findall(r"^\| (l1_filter|random_channel) \| synthetic \| .* \| (\d+\.\d+)x \| (\d+\.\d+)x \|", text, re.M)
    assert [p[0] for p in pruned] == ["l1_filter", "random_channel"]
    assert all(float(theoretical) >= 2.0 and float(measured) > 0 for _, theoretical, measured in pruned)
    assert "torch-eager, cpu" in text and "random tensors of CIFAR-10's shape" in text
    assert len(list((tmp_path / "r").glob("*/result.json"))) == 2  # both runs went through the pipeline


def test_without_a_gpu_it_says_so() -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("gpu_check: torch ") and "sees no CUDA GPU" in done.stderr
