"""Executing jobs: one job function, applied to opaque jobs, failures captured, never raised.

An executor knows nothing of what a job is: it gets picklable jobs and a module-level function
``fn(job) -> dict`` (the result), and reports each job's start and end through two hooks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from prunebench.errors import TrainingDiverged

log = logging.getLogger("prunebench")

PR_SET_PDEATHSIG = 1  # prctl(2)
PARENT_POLL_S = 0.5


@dataclass(frozen=True)
class Outcome:
    status: str  # completed | failed | diverged
    result: Any = None  # what the job function returned (a run's record)
    error: str | None = None


JobFn = Callable[[Any], Any]
StartHook = Callable[[Any], None]
DoneHook = Callable[[Any, Outcome], None]


def execute(fn: JobFn, job: Any) -> Outcome:
    """Run ``fn(job)``; an exception becomes a 'failed' (or 'diverged') outcome with its message."""
    try:
        return Outcome("completed", fn(job))
    except TrainingDiverged as exc:
        return Outcome("diverged", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the sweep
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        return Outcome("failed", error=f"{type(exc).__name__}: {exc} ({where})")


def threads_per_worker(workers: int) -> int:
    """Split the cores between workers so torch does not oversubscribe the machine."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def die_with_parent() -> None:
    """End this worker process when the process that started it ends, however it ends.

    Linux's PR_SET_PDEATHSIG does it at once (even after a SIGKILL of the parent); a thread that
    watches the parent pid covers other systems and the parent dying before the prctl call.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)  # the parent is gone: nothing would read this worker's result

    if parent == 1:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def init_worker(threads: int, log_level: int) -> None:
    """A worker process is ours: its thread count, its logging, and its life ends with the driver's."""
    die_with_parent()
    # Ctrl-C reaches the whole process group: the driver ends the workers itself, without their tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    if sys.stderr.isatty():  # the driver draws a live bar there; per-epoch lines would tear it
        log_level = max(log_level, logging.WARNING)
    logging.basicConfig(level=log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


class Executor(Protocol):
    name: str

    @property
    def local_device(self) -> bool:
        """Whether the runs use this machine's torch and devices (a cluster's nodes have their own)."""
        ...

    def run(self, jobs: Sequence[Any], fn: JobFn, on_start: StartHook, on_done: DoneHook) -> None:
        """Run ``fn`` on every job; call ``on_start`` as each begins and ``on_done`` as each ends.

        ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one).
        """
        ...

    def close(self) -> None:
        """Release workers (a pool, a Ray it started); ``run`` may not be called after."""
        ...
