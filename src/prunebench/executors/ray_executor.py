"""One Ray task per job, on a local Ray or a cluster (``pip install prunebench[ray]``).

The results directory must be reachable at the same path from every node (a shared file
system); the driver alone writes the results database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebench.config import RunSettings
from prunebench.errors import ConfigError
from prunebench.executors.base import DoneHook, Outcome, StartHook, execute
from prunebench.experiment.sweep import Job


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'prunebench[ray]'") from None
    return ray


def _execute_with_threads(job: Job, settings: RunSettings, results_dir: Path, threads: int) -> Outcome:
    import torch

    torch.set_num_threads(threads)
    return execute(job, settings, results_dir)


@dataclass
class RayExecutor:
    settings: RunSettings
    results_dir: Path
    workers: int
    address: str | None = None  # None starts a local Ray; "auto" or "ray://host:10001" joins one
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0
    name: str = "ray"

    def run(self, jobs: Sequence[Job], on_start: StartHook, on_done: DoneHook) -> None:
        if not jobs:
            return
        ray = _ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=self.workers * self.cpus_per_job, include_dashboard=False,
                    log_to_driver=False, _node_ip_address="127.0.0.1",
                )
        task = ray.remote(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job)(_execute_with_threads)
        results_dir = self.results_dir.resolve()
        queue = list(jobs)
        running: dict[Any, Job] = {}
        while queue or running:
            while queue and len(running) < self.workers:
                job = queue.pop(0)
                on_start(job)
                running[task.remote(job, self.settings, results_dir, self.settings.threads or self.cpus_per_job)] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task or its node died
                    outcome = Outcome("failed", error=f"ray task failed: {type(exc).__name__}: {exc}")
                on_done(job, outcome)

    def close(self) -> None:
        """Leave Ray running: a cluster, or the caller's own session, outlives one sweep."""
