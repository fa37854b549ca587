"""Executors: serial, a local process pool (default), and Ray."""

from __future__ import annotations

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
    name: str, settings: RunSettings, results_dir: Path, workers: int | None = None, address: str | None = None
) -> Executor:
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if name == "serial":
        return SerialExecutor(settings, results_dir)
    if name == "local":
        return LocalExecutor(settings, results_dir, workers)
    if name == "ray":
        return RayExecutor(settings, results_dir, workers, address=address)
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


__all__ = ["EXECUTORS", "Executor", "Outcome", "execute", "make_executor"]
