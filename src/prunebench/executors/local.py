"""A local process pool: at most ``workers`` jobs in flight, each with its share of the cores."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from prunebench.executors.base import DoneHook, JobFn, Outcome, StartHook, execute, init_worker, threads_per_worker


@dataclass
class LocalExecutor:
    """One process pool for the executor's lifetime: starting workers (importing torch) costs
    seconds, so the dense phase and the pruning phase of a sweep share it. ``close`` ends it.

    Workers die with the driver (see :func:`~prunebench.executors.base.die_with_parent`); an
    interrupted ``run`` (Ctrl-C, SIGTERM) kills them before it re-raises, so no worker goes on
    writing into the results directory.
    """

    workers: int
    name: str = "local"
    local_device: bool = True
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            log_level = logging.getLogger("prunebench").getEffectiveLevel()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                # spawn, not fork: a forked copy of an initialized torch runtime can deadlock
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(threads_per_worker(self.workers), log_level),
            )
        return self._pool

    def run(self, jobs: Sequence[Any], fn: JobFn, on_start: StartHook, on_done: DoneHook) -> None:
        """Run ``jobs`` ``workers`` at a time. A worker that dies (an OOM kill, a segfault) breaks
        the whole pool and every job in flight with it: those are run again one at a time, so
        a job whose worker dies again, alone, is the one that failed, and the others complete."""
        queue = list(jobs)
        suspects: list[Any] = []  # in flight when a worker died
        running: dict[Future[Outcome], tuple[Any, bool]] = {}  # future -> (job, ran alone)

        def start(waiting: list[Any], alone: bool) -> bool:
            """Submit ``waiting[0]`` and take it off the list; False if the pool broke before it could."""
            try:
                future = self.pool().submit(execute, fn, waiting[0])
            except BrokenProcessPool:
                # A worker died while none of its jobs was waited on (between two jobs, or
                # between two calls of run): the pool's jobs in flight, if any, come back
                # failed and become suspects; the job is submitted again to a fresh pool.
                self.discard()
                return False
            job = waiting.pop(0)
            on_start(job)
            running[future] = (job, alone)
            return True

        try:
            while queue or suspects or running:
                if suspects:
                    if not running:  # the broken pool's futures are all drained: one suspect alone
                        start(suspects, alone=True)
                else:
                    while queue and len(running) < self.workers and start(queue, alone=False):
                        pass
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job, alone = running.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 - a worker died (OOM, segfault)
                        self.close()  # a broken pool takes no more work; the next job starts a new one
                        if not alone:
                            suspects.append(job)
                            continue
                        outcome = Outcome("failed", error=f"worker process died running it alone: {type(exc).__name__}: {exc}")
                    on_done(job, outcome)
        except BaseException:
            self.kill()  # interrupted: the unfinished jobs are the runner's to resume, not ours to finish
            raise

    def kill(self) -> None:
        """End every worker now (their jobs are lost; they are rerun on resume)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # ProcessPoolExecutor has no public way to stop running work before Python 3.14
        processes = list(getattr(pool, "_processes", {}).values())
        for process in processes:
            process.kill()
        for process in processes:
            process.join(timeout=5)
        pool.shutdown(wait=False, cancel_futures=True)

    def discard(self) -> None:
        """Drop a broken pool without waiting: its futures are failed by the pool itself."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
