"""benchmarks/before_after.py: a tie is counted only at the keep boundary, and a single changed
mask entry or figure makes a comparison fail."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from benchmarks.before_after import KEY, boundary_ties, compare_masks, compare_results


def test_boundary_ties_counts_only_a_tie_that_the_keep_boundary_splits() -> None:
    scores = {"w": torch.tensor([1.0, 2.0, 2.0, 2.0, 3.0])}
    split = {"w": torch.tensor([False, True, False, True, True])}  # one of three 2.0s pruned
    assert boundary_ties(scores, split) == 3
    below = {"w": torch.tensor([False, False, False, False, True])}  # every 2.0 pruned
    assert boundary_ties(scores, below) == 0
    untied = {"w": torch.tensor([1.0, 2.0, 3.0])}
    assert boundary_ties(untied, {"w": torch.tensor([False, True, True])}) == 0


def write_masks(path: Path, flip: bool) -> None:
    mask = torch.tensor([True, False, True, True])
    if flip:
        mask = mask.clone()
        mask[1] = True
    torch.save({"dense_sha256": "d", "masks": {"magnitude/global/2": {"w": mask}}, "ties": {}}, path)


def test_compare_masks_fails_on_one_changed_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_masks(tmp_path / "a.pt", flip=False)
    write_masks(tmp_path / "b.pt", flip=False)
    write_masks(tmp_path / "c.pt", flip=True)
    assert compare_masks(tmp_path / "a.pt", tmp_path / "b.pt") == 0
    assert compare_masks(tmp_path / "a.pt", tmp_path / "c.pt") == 1
    assert "magnitude/global/2: 1 entries differ" in capsys.readouterr().out


def write_results(path: Path, run_id: str, top1: str) -> None:
    row = {k: "" for k in KEY} | {
        "role": "method", "strategy": "magnitude", "scope": "global", "target_value": "2.0", "seed": "0",
        "run_id": run_id, "status": "completed", "wall_time_s": run_id, "error": "",
        "compression_ratio": "2.0", "theoretical_speedup": "2.003", "pre_retrain_top1": "0.9779", "top1": top1, "top5": "0.9996",
    }
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)


def test_compare_results_pairs_runs_across_run_ids_and_fails_on_one_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_results(tmp_path / "after.csv", "aaaa", "0.9838")
    write_results(tmp_path / "before.csv", "bbbb", "0.9838")  # another run id and wall time: the same run
    write_results(tmp_path / "moved.csv", "cccc", "0.9837")
    assert compare_results(tmp_path / "after.csv", tmp_path / "before.csv", []) == 0
    assert "runs that differ: 0" in capsys.readouterr().out
    assert compare_results(tmp_path / "after.csv", tmp_path / "moved.csv", []) == 1
    assert "top1 0.9837 -> 0.9838" in capsys.readouterr().out


def test_compare_results_from_the_command_line_reads_both_folders(tmp_path: Path) -> None:
    """The folders given on the command line are paths (their existence is checked), and each
    run's mask.pt and model.pt are compared byte for byte."""
    import subprocess
    import sys

    write_results(tmp_path / "after.csv", "aaaa", "0.9838")
    write_results(tmp_path / "before.csv", "bbbb", "0.9838")
    for folder, run_id, weight in (("a", "aaaa", b"1"), ("b", "bbbb", b"2")):
        (tmp_path / folder / run_id).mkdir(parents=True)
        (tmp_path / folder / run_id / "mask.pt").write_bytes(b"mask")
        (tmp_path / folder / run_id / "model.pt").write_bytes(weight)
    command = [sys.executable, "-m", "benchmarks.before_after", "compare-results",
               str(tmp_path / "after.csv"), str(tmp_path / "before.csv"), str(tmp_path / "a"), str(tmp_path / "b")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert done.returncode == 1 and "model.pt" in done.stdout, done.stdout + done.stderr
    missing = subprocess.run([*command[:-1], str(tmp_path / "nowhere")], capture_output=True, text=True,
                             cwd=Path(__file__).parent.parent)
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nowhere: no such file or folder")
