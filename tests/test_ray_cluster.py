"""Ray across two nodes that share no folder, one of them killed mid-sweep.

The cluster is Ray's own test cluster (``ray.cluster_utils.Cluster``): a head node and a worker
node on 127.0.0.1, each a raylet with its own processes, one CPU and its own temp dir
(``TMPDIR``), under which the runs' scratch folders go. The driver (this process) is the only
writer of the results directory: every file there must arrive through it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prunebench.executors import make_executor
from prunebench.executors.shipping import SCRATCH_PREFIX, Files
from prunebench.plan.jobs import JobFunction
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.store import ResultsDB
from prunebench.store.artifacts import sha256_file

NODE_MEMORY = 80 * 1024**2  # each node's object store: a sweep of tiny models needs little
# Two seeds: two dense checkpoints, each pruned by magnitude and by the random control.
SWEEP = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    # long enough that a pruned run is still running when its node is killed (about 3 s each here)
    "finetune": {"epochs": 8, "lr": 0.01, "batch_size": 64},
    "sweep": {"prune.strategy": ["magnitude"], "prune.compression": [4], "seed": [0, 1]},
}
NODES = ("head", "worker")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, Any], dict[str, Path]]]:
    """(the cluster, its nodes by name, each node's scratch root), the driver connected; always shut down."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # 127.0.0.1 for every node: Ray would otherwise pick the machine's routable address and bind
    # every interface (Ray's single-machine mode, for its child processes and for this one)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    ray_dir = Path(tempfile.mkdtemp(prefix="pb-rc-", dir="/tmp"))  # short: Ray's unix sockets live there
    # The cluster also writes its address into Ray's default folder (RAY_TMPDIR/ray, else /tmp/ray),
    # which need not exist on a fresh machine: point it into this test's own folder.
    monkeypatch.setenv("RAY_TMPDIR", str(ray_dir))
    (ray_dir / "ray").mkdir()
    scratch = {name: tmp_path / f"scratch-{name}" for name in NODES}
    test_cluster = Cluster()
    try:
        nodes = {}
        for name in NODES:
            scratch[name].mkdir()
            nodes[name] = test_cluster.add_node(
                num_cpus=1, object_store_memory=NODE_MEMORY, node_ip_address="127.0.0.1", temp_dir=str(ray_dir),
                include_dashboard=False, env_vars={"TMPDIR": str(scratch[name])},
            )
        test_cluster.wait_for_nodes()
        ray.init(address=test_cluster.address, log_to_driver=False, logging_level=logging.ERROR)
        yield test_cluster, nodes, scratch
    finally:
        ray.shutdown()
        test_cluster.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)


def scratch_folders(root: Path) -> list[Path]:
    return sorted(root.glob(SCRATCH_PREFIX + "*"))


@pytest.mark.slow  # a two-node Ray cluster and six runs: about 90 s on 2 busy cores
def test_two_nodes_share_no_folder_and_a_node_killed_mid_sweep_loses_and_repeats_nothing(
    cluster: tuple[Any, dict[str, Any], dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    test_cluster, nodes, scratch = cluster
    plan = plan_from_mapping(SWEEP)
    dense_ids = {job.spec.dense_spec().content_hash() for job in plan.jobs}
    results = tmp_path / "results"

    # The driver's writes, each file's inode just after (an atomic write makes a new one): a file
    # that a worker wrote, before or after, would be missing here or have another inode.
    written: dict[str, int] = {}
    unpack = JobFunction.unpack

    def recording_unpack(self: JobFunction, files: Files) -> None:
        again = [name for name in files if name in written]
        assert not again, f"written twice: {again}"
        assert not [name for name in files if (self.results_dir / name).exists()], "a file was there before the driver wrote it"
        unpack(self, files)
        written.update({name: (self.results_dir / name).stat().st_ino for name in files})

    monkeypatch.setattr(JobFunction, "unpack", recording_unpack)

    # Kill the worker node while it prunes: once both dense checkpoints are in the results
    # directory, the first scratch folder on that node seeded with a checkpoint is a pruned run's.
    killed: list[Path] = []
    stop = threading.Event()

    def kill_worker_node() -> None:
        while not stop.wait(0.05):
            if len(list(results.glob("dense/*/dense.json"))) < len(dense_ids):
                continue
            running = [f for f in scratch_folders(scratch["worker"]) if list(f.glob("dense/*/dense.json"))]
            if running:
                killed.extend(running)
                test_cluster.remove_node(nodes["worker"], allow_graceful=False)
                return

    killer = threading.Thread(target=kill_worker_node, daemon=True)
    caplog.set_level(logging.DEBUG, logger="prunebench")
    killer.start()
    try:
        statuses = run_plan(plan, results, make_executor("ray", workers=2, address=test_cluster.address), live=False)
    finally:
        stop.set()
        killer.join(timeout=60)

    # Every run completed, once: one row per run id, started once (Ray reran the lost task itself)
    assert statuses == {"completed": len(plan.jobs)}
    rows = ResultsDB(results).rows()
    assert sorted(r["run_id"] for r in rows) == sorted(job.run_id for job in plan.jobs)
    assert all(r["status"] == "completed" and r["attempts"] == 1 for r in rows)

    # The worker node was killed running a pruned run: its scratch folder is left, and the run
    # still completed (on the head node, the only one left)
    assert len(killed) == 1, "the worker node was never seen running a pruned run"
    assert scratch_folders(scratch["worker"]) == killed
    assert test_cluster.list_all_nodes() == [nodes["head"]]

    # Each job's files came back from a scratch folder of the node it ran on, both nodes ran jobs,
    # and finished scratch folders are gone
    ended = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a job ended")]
    assert len(ended) == len(plan.jobs)
    where = {name: sum(f" {scratch[name]}/{SCRATCH_PREFIX}" in line for line in ended) for name in NODES}
    assert where["head"] >= 1 and where["worker"] >= 1 and sum(where.values()) == len(plan.jobs), ended
    assert scratch_folders(scratch["head"]) == []

    # Every file in the results directory is one the driver wrote, as it wrote it; no worker
    # took a lock there
    on_disk = {p.relative_to(results).as_posix(): p.stat().st_ino for p in results.rglob("*")
               if p.is_file() and not p.name.startswith("prunebench.db") and p.name != ".prunebench.lock"}
    assert on_disk == written
    assert list(results.glob("dense/*/.prunebench.lock")) == []

    # Each dense model was trained once, on one node, and every pruned run (on either node, the
    # rerun included) loaded those very weights
    by_id = {r["run_id"]: r["result"] for r in rows}
    dense_rows = [by_id[job.run_id] for job in plan.jobs if job.kind == "dense"]
    assert sorted(r.dense_id for r in dense_rows) == sorted(dense_ids)
    assert not any(r.provenance.dense_cached for r in dense_rows)
    for job in (j for j in plan.jobs if j.kind == "pruned"):
        result = by_id[job.run_id]
        assert result.provenance.dense_cached and result.timings.dense_train == 0.0
        assert result.dense_sha256 == sha256_file(results / "dense" / result.dense_id / "model.pt")
