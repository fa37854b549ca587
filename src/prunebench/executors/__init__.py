"""Executors: serial, a local process pool (default), and Ray."""

from __future__ import annotations

import math
import os
from pathlib import Path

from prunebench.config import RunSettings
from prunebench.errors import ConfigError
from prunebench.executors.base import Executor, Outcome, execute
from prunebench.executors.local import LocalExecutor
from prunebench.executors.ray_executor import RayExecutor
from prunebench.executors.serial import SerialExecutor

EXECUTORS = ("serial", "local", "ray")


def make_executor(
    name: str,
    settings: RunSettings,
    results_dir: Path,
    workers: int | None = None,
    *,
    address: str | None = None,
    cpus_per_run: int = 1,
    gpus_per_run: float = 0.0,
) -> Executor:
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run must be >= 1, got {cpus_per_run}")
    if not (math.isfinite(gpus_per_run) and gpus_per_run >= 0):
        raise ConfigError(f"--gpus-per-run must be a finite number >= 0, got {gpus_per_run}")
    if name == "serial":
        return SerialExecutor(settings, results_dir)
    if name == "local":
        return LocalExecutor(settings, results_dir, workers)
    if name == "ray":
        return RayExecutor(
            settings, results_dir, workers, address=address, cpus_per_job=cpus_per_run, gpus_per_job=gpus_per_run
        )
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


__all__ = ["EXECUTORS", "Executor", "Outcome", "execute", "make_executor"]
