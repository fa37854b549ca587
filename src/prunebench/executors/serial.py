"""One job after another in this process: the reference executor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prunebench.config import RunSettings
from prunebench.executors.base import DoneHook, StartHook, execute
from prunebench.experiment.sweep import Job


@dataclass
class SerialExecutor:
    settings: RunSettings
    results_dir: Path
    name: str = "serial"

    def run(self, jobs: Sequence[Job], on_start: StartHook, on_done: DoneHook) -> None:
        for job in jobs:
            on_start(job)
            on_done(job, execute(job, self.settings, self.results_dir))

    def close(self) -> None:
        """Nothing to release."""
