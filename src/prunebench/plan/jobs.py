"""The job function every executor runs: a sweep's dense and pruned jobs, dispatched by kind."""

from __future__ import annotations

import functools
from pathlib import Path

from prunebench.config import RunSettings
from prunebench.executors import JobFn
from prunebench.experiment.baseline import run_dense
from prunebench.experiment.lm import run_lm_dense, run_lm_experiment
from prunebench.experiment.pipeline import run_experiment
from prunebench.plan.sweep import Job
from prunebench.plugins import load_plugins
from prunebench.record import RunResult


def run_job(job: Job, settings: RunSettings, results_dir: Path) -> RunResult:
    """Run one job and return its record; the caller's torch thread count is left as it was."""
    load_plugins(settings.plugins)  # a spawned or remote worker has not imported them yet
    if job.spec.is_lm:
        run = run_lm_dense if job.kind == "dense" else run_lm_experiment
    else:
        run = run_dense if job.kind == "dense" else run_experiment
    return run(job.spec, settings, results_dir)


def job_function(settings: RunSettings, results_dir: Path) -> JobFn:
    """``run_job`` with the settings bound: picklable, so every executor's workers can run it.

    The results directory is made absolute: a worker (a Ray node) may start elsewhere.
    """
    return functools.partial(run_job, settings=settings, results_dir=results_dir.resolve())
