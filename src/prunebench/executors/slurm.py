"""SLURM through submitit: each run is one task of a job array (``pip install prunebench[slurm]``).

The driver submits the runs, waits for them and records each outcome; the job function writes
its run folder as under every executor, so the results directory (and submitit's job folder
beside it) must be on a file system the compute nodes share, as submitit itself requires.

A task that ends without a result (killed, out of memory, node failure, time limit) is
submitted again, once by default; a run that raised inside its task is a failed run, as under
every executor, and is not retried here (``prunebench run`` reruns failed runs on resume).
``cluster="local"`` runs every task as a process of this machine (submitit's local executor),
which is how the tests exercise this path without a SLURM installation.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebench.errors import ConfigError
from prunebench.executors.base import DoneHook, JobFn, Outcome, StartHook, execute

CLUSTERS = ("slurm", "local")
POLL_S = 1.0  # how often the driver looks at its tasks: SLURM's own accounting is coarser


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError("executor 'slurm' needs submitit: pip install 'prunebench[slurm]'") from None
    return submitit


def execute_with_threads(fn: JobFn, job: Any, threads: int) -> Outcome:
    """A task's process is ours: it gets the CPUs its task asked for, then runs the job."""
    import torch

    torch.set_num_threads(threads)
    return execute(fn, job)


@dataclass
class _Task:
    job: Any  # the run
    handle: Any  # submitit's Job
    attempt: int  # 1 for the first submission


@dataclass
class SlurmExecutor:
    """``workers``: at most this many runs at once (SLURM's array parallelism); None: no cap of ours.

    ``folder``: submitit's job folder (pickled jobs, results, logs), one subfolder per task.
    """

    folder: Path
    workers: int | None = None
    partition: str | None = None
    time_min: int = 60
    cpus_per_job: int = 1
    gpus_per_job: int = 0
    mem_gb: float | None = None
    cluster: str = "slurm"
    retries: int = 1
    poll_s: float = POLL_S
    name: str = "slurm"

    def __post_init__(self) -> None:
        if self.cluster not in CLUSTERS:
            raise ConfigError(f"--slurm-cluster must be one of {', '.join(CLUSTERS)}, got {self.cluster!r}")
        if self.time_min < 1:
            raise ConfigError(f"--slurm-time must be >= 1 minute, got {self.time_min}")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise ConfigError(f"--slurm-mem-gb must be > 0, got {self.mem_gb}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise ConfigError(
                "executor 'slurm': no SLURM here (sbatch not found on PATH); run it on a cluster's login "
                "node, or pass --slurm-cluster local to run its tasks as processes of this machine"
            )
        _submitit()  # a missing package is refused before anything is planned

    @property
    def local_device(self) -> bool:
        """Whether the runs use this machine's torch (and devices)."""
        return self.cluster == "local"

    def _executor(self, in_flight: int) -> Any:
        submitit = _submitit()
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        parameters: dict[str, Any] = {
            "name": "prunebench", "timeout_min": self.time_min, "cpus_per_task": self.cpus_per_job,
            "tasks_per_node": 1, "nodes": 1, "slurm_array_parallelism": in_flight,
        }
        if self.gpus_per_job:
            parameters["gpus_per_node"] = self.gpus_per_job
        if self.mem_gb is not None:
            parameters["mem_gb"] = self.mem_gb
        if self.partition is not None:
            parameters["slurm_partition"] = self.partition
        executor.update_parameters(**parameters)
        return executor

    def run(self, jobs: Sequence[Any], fn: JobFn, on_start: StartHook, on_done: DoneHook) -> None:
        if not jobs:
            return
        # SLURM queues a whole array in one call and runs `workers` of it at once; submitit's local
        # executor would start every task at once, so locally the driver keeps the cap itself.
        cap = self.workers or len(jobs)
        in_flight = len(jobs) if self.cluster == "slurm" else cap
        executor = self._executor(cap)
        queue: list[tuple[Any, int]] = [(job, 1) for job in jobs]
        running: list[_Task] = []
        try:
            while queue or running:
                if queue and len(running) < in_flight:
                    batch, queue = queue[: in_flight - len(running)], queue[in_flight - len(running) :]
                    handles = executor.map_array(
                        execute_with_threads, [fn] * len(batch), [job for job, _ in batch],
                        [self.cpus_per_job] * len(batch),
                    )
                    for (job, attempt), handle in zip(batch, handles):
                        if attempt == 1:
                            on_start(job)
                        running.append(_Task(job, handle, attempt))
                finished = [task for task in running if task.handle.done()]
                for task in finished:
                    running.remove(task)
                    outcome = self._outcome(task)
                    if outcome is None:
                        queue.append((task.job, task.attempt + 1))
                    else:
                        on_done(task.job, outcome)
                if not finished:
                    time.sleep(self.poll_s)
        except BaseException:
            for task in running:  # interrupted: the unfinished runs are resumed by the next `run`
                task.handle.cancel(check=False)
            raise

    def _outcome(self, task: _Task) -> Outcome | None:
        """The task's outcome, or None where it ended without one and may be submitted again."""
        submitit = _submitit()
        try:
            outcome: Outcome = task.handle.result()
            return outcome
        except submitit.core.utils.UncompletedJobError as exc:  # FailedJobError included: killed, timed out
            if task.attempt <= self.retries:
                return None
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Outcome("failed", error=f"slurm task {task.handle.job_id} ended without a result "
                                          f"after {task.attempt} attempts: {last}")

    def close(self) -> None:
        """Nothing to release: every task has ended when ``run`` returns."""
