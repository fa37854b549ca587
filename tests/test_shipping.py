"""A sweep's job run in a scratch folder, its files carried both ways (no Ray: the worker's and
the driver's halves called in this process). The two-node Ray cluster is tests/test_ray_cluster.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prunebench.executors.shipping import SCRATCH_PREFIX, FolderJobFn, run_in_scratch
from prunebench.plan.jobs import job_function
from prunebench.plan.sweep import plan_from_mapping
from prunebench.store.layout import completed_dense, completed_result

SWEEP = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
    "sweep": {"prune.strategy": ["magnitude"], "prune.compression": [4]},
}


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root``: relative path -> inode (a rewrite through a temp file changes it)."""
    return {p.relative_to(root).as_posix(): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def test_a_job_in_scratch_writes_nothing_where_it_was_bound_and_its_files_come_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_from_mapping(SWEEP)
    dense_job = next(j for j in plan.jobs if j.kind == "dense")
    pruned_job = next(j for j in plan.jobs if j.kind == "pruned" and j.spec.prune.strategy == "magnitude")
    results, node = tmp_path / "results", tmp_path / "node"
    results.mkdir()
    node.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(node))  # the worker's temp dir: its scratch goes there
    fn = job_function(plan.settings, results)
    assert isinstance(fn, FolderJobFn)
    dense_id = dense_job.spec.dense_spec().content_hash()

    # the dense job: trained in scratch, nothing written where the function was bound
    inputs = [fn.pack(folder) for folder in fn.inputs(dense_job)]
    assert inputs == [{}]  # nothing trained yet
    shipped = run_in_scratch(fn, dense_job, 1, *inputs)
    assert shipped.outcome.status == "completed", shipped.outcome.error
    assert tree(results) == {}
    assert Path(shipped.scratch).parent == node and list(node.glob(SCRATCH_PREFIX + "*")) == []  # removed after
    assert set(shipped.files) == {f"dense/{dense_id}/model.pt", f"dense/{dense_id}/dense.json"}  # no lock file
    fn.unpack(shipped.files)
    found = completed_dense(results, dense_id)
    assert found is not None and found[1]["model_sha256"] == shipped.outcome.result.dense_sha256

    # the pruned job: the dense checkpoint travels to it and is loaded, not trained again
    before = tree(results)
    inputs = [fn.pack(folder) for folder in fn.inputs(pruned_job)]
    assert sorted(inputs[0]) == sorted(shipped.files) and inputs[1] == {}
    pruned = run_in_scratch(fn, pruned_job, 1, *inputs)
    assert pruned.outcome.status == "completed", pruned.outcome.error
    assert tree(results) == before
    result = pruned.outcome.result
    assert result.provenance.dense_cached and result.timings.dense_train == 0.0
    assert result.dense_sha256 == found[1]["model_sha256"]
    run = pruned_job.run_id
    assert set(pruned.files) == {f"{run}/result.json", f"{run}/mask.pt", f"{run}/model.pt"}  # the dense files are unchanged
    fn.unpack(pruned.files)
    stored = completed_result(results, run)
    assert stored is not None and stored["accuracy"]["top1"] == result.accuracy.top1


def test_unpack_refuses_paths_outside_the_results_directory_and_writes_markers_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn = job_function(plan_from_mapping(SWEEP).settings, tmp_path / "results")
    for name in ("../escape.json", "/etc/passwd", "run/../../x", ""):
        with pytest.raises(ValueError, match="outside its folder"):
            fn.unpack({"run/model.pt": b"m", name: b"x"})
        assert not (tmp_path / "results").exists()  # checked before anything is written
    written: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr("os.replace", lambda src, dst: (written.append(Path(dst).name), real_replace(src, dst)))
    fn.unpack({"run/result.json": b"{}", "run/mask.pt": b"k", "run/.prunebench.lock": b"", "run/model.pt": b"m"})
    assert written[-1] == "result.json" and sorted(written) == ["mask.pt", "model.pt", "result.json"]
