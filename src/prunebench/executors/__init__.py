"""Executors: serial, a local process pool (default), Ray, and SLURM through submitit.

They run a job function over opaque, picklable jobs and know nothing of what a job is; the
planning layer supplies both (``prunebench.plan.jobs``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from prunebench.errors import ConfigError
from prunebench.executors.base import Executor, JobFn, Outcome, execute
from prunebench.executors.local import LocalExecutor
from prunebench.executors.ray_executor import RayExecutor
from prunebench.executors.serial import SerialExecutor
from prunebench.executors.slurm import SlurmExecutor

EXECUTORS = ("serial", "local", "ray", "slurm")


@dataclass(frozen=True)
class SlurmSettings:
    """What ``--executor slurm`` asks the cluster for (the ``--slurm-*`` flags)."""

    folder: Path  # submitit's job folder: on a file system the compute nodes share
    partition: str | None = None
    time_min: int = 60
    mem_gb: float | None = None
    cluster: str = "slurm"  # "local": every task a process of this machine (testing)


def make_executor(
    name: str,
    workers: int | None = None,
    *,
    address: str | None = None,
    cpus_per_run: int = 1,
    gpus_per_run: float = 0.0,
    slurm: SlurmSettings | None = None,
) -> Executor:
    """The named executor; ``ray`` joins ``address`` (or starts a private Ray) here, so a
    cluster that cannot be reached is a ConfigError before anything is written. ``workers``
    None: one per core, except under SLURM, where the cluster's scheduler decides."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run must be >= 1, got {cpus_per_run}")
    if not (math.isfinite(gpus_per_run) and gpus_per_run >= 0):
        raise ConfigError(f"--gpus-per-run must be a finite number >= 0, got {gpus_per_run}")
    if name == "slurm":
        if slurm is None:
            raise ConfigError("executor 'slurm' needs a job folder (SlurmSettings)")
        if gpus_per_run != int(gpus_per_run):
            raise ConfigError(f"--gpus-per-run must be a whole number under SLURM, got {gpus_per_run:g}")
        return SlurmExecutor(
            folder=slurm.folder, workers=workers, partition=slurm.partition, time_min=slurm.time_min,
            cpus_per_job=cpus_per_run, gpus_per_job=int(gpus_per_run), mem_gb=slurm.mem_gb, cluster=slurm.cluster,
        )
    workers = (os.cpu_count() or 1) if workers is None else workers
    if name == "serial":
        return SerialExecutor()
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        executor = RayExecutor(workers, address=address, cpus_per_job=cpus_per_run, gpus_per_job=gpus_per_run)
        executor.connect()
        return executor
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


__all__ = ["EXECUTORS", "Executor", "JobFn", "Outcome", "SlurmSettings", "execute", "make_executor"]
