"""One job after another in this process: the reference executor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prunebench.executors.base import DoneHook, JobFn, StartHook, execute


@dataclass
class SerialExecutor:
    name: str = "serial"
    local_device: bool = True

    def run(self, jobs: Sequence[Any], fn: JobFn, on_start: StartHook, on_done: DoneHook) -> None:
        for job in jobs:
            on_start(job)
            on_done(job, execute(fn, job))

    def close(self) -> None:
        """Nothing to release."""
