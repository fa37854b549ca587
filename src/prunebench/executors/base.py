"""Executing jobs: the same job function everywhere, failures captured, never raised."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from prunebench.config import RunSettings
from prunebench.errors import TrainingDiverged
from prunebench.experiment.sweep import Job
from prunebench.record import RunResult

log = logging.getLogger("prunebench")


@dataclass(frozen=True)
class Outcome:
    status: str  # completed | failed | diverged
    result: RunResult | None = None
    error: str | None = None


def execute(job: Job, settings: RunSettings, results_dir: Path) -> Outcome:
    """Run one job; an exception becomes a 'failed' (or 'diverged') outcome with its message."""
    from prunebench.experiment.baseline import run_dense
    from prunebench.experiment.pipeline import run_experiment
    from prunebench.plugins import load_plugins

    try:
        load_plugins(settings.plugins)  # a spawned or remote worker has not imported them yet
        if job.kind == "dense":
            return Outcome("completed", run_dense(job.spec, settings, results_dir))
        return Outcome("completed", run_experiment(job.spec, settings, results_dir))
    except TrainingDiverged as exc:
        return Outcome("diverged", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the sweep
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        return Outcome("failed", error=f"{type(exc).__name__}: {exc} ({where})")


def threads_per_worker(workers: int) -> int:
    """Split the cores between workers so torch does not oversubscribe the machine."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def init_worker(threads: int, log_level: int) -> None:
    torch.set_num_threads(threads)
    if sys.stderr.isatty():  # the driver draws a live bar there; per-epoch lines would tear it
        log_level = max(log_level, logging.WARNING)
    logging.basicConfig(level=log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


StartHook = Callable[[Job], None]
DoneHook = Callable[[Job, Outcome], None]


class Executor(Protocol):
    name: str

    def run(self, jobs: Sequence[Job], on_start: StartHook, on_done: DoneHook) -> None:
        """Run every job; call ``on_start`` as each begins and ``on_done`` as each ends."""
        ...

    def close(self) -> None:
        """Release workers (a pool, a Ray connection); ``run`` may not be called after."""
        ...
