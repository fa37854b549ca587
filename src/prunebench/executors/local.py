"""A local process pool: at most ``workers`` jobs in flight, each with its share of the cores."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from prunebench.config import RunSettings
from prunebench.executors.base import DoneHook, Outcome, StartHook, execute, init_worker, threads_per_worker
from prunebench.experiment.sweep import Job


@dataclass
class LocalExecutor:
    settings: RunSettings
    results_dir: Path
    workers: int
    name: str = "local"

    def run(self, jobs: Sequence[Job], on_start: StartHook, on_done: DoneHook) -> None:
        if not jobs:
            return
        threads = self.settings.threads or threads_per_worker(self.workers)
        # spawn, not fork: a forked copy of an initialized torch runtime can deadlock
        context = multiprocessing.get_context("spawn")
        log_level = logging.getLogger("prunebench").getEffectiveLevel()
        queue = list(jobs)
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(jobs)), mp_context=context,
            initializer=init_worker, initargs=(threads, log_level),
        ) as pool:
            running: dict[Future[Outcome], Job] = {}
            while queue or running:
                while queue and len(running) < self.workers:
                    job = queue.pop(0)
                    on_start(job)
                    running[pool.submit(execute, job, self.settings, self.results_dir)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 - a worker died (OOM, segfault)
                        outcome = Outcome("failed", error=f"worker process died: {type(exc).__name__}: {exc}")
                    on_done(job, outcome)
