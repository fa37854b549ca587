"""Executors: serial, a local process pool (default), and Ray.

They run a job function over opaque, picklable jobs and know nothing of what a job is; the
planning layer supplies both (``prunebench.plan.jobs``).
"""

from __future__ import annotations

import math
import os

from prunebench.errors import ConfigError
from prunebench.executors.base import Executor, JobFn, Outcome, execute
from prunebench.executors.local import LocalExecutor
from prunebench.executors.ray_executor import RayExecutor
from prunebench.executors.serial import SerialExecutor

EXECUTORS = ("serial", "local", "ray")


def make_executor(
    name: str,
    workers: int | None = None,
    *,
    address: str | None = None,
    cpus_per_run: int = 1,
    gpus_per_run: float = 0.0,
) -> Executor:
    """The named executor; ``ray`` joins ``address`` (or starts a private Ray) here, so a
    cluster that cannot be reached is a ConfigError before anything is written."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run must be >= 1, got {cpus_per_run}")
    if not (math.isfinite(gpus_per_run) and gpus_per_run >= 0):
        raise ConfigError(f"--gpus-per-run must be a finite number >= 0, got {gpus_per_run}")
    if name == "serial":
        return SerialExecutor()
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        executor = RayExecutor(workers, address=address, cpus_per_job=cpus_per_run, gpus_per_job=gpus_per_run)
        executor.connect()
        return executor
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


__all__ = ["EXECUTORS", "Executor", "JobFn", "Outcome", "execute", "make_executor"]
