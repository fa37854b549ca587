"""The dense baseline row of a comparison: the shared dense checkpoint, evaluated as is."""

from __future__ import annotations

from pathlib import Path

from prunebench.spec import ExperimentSpec, RunSettings
from prunebench.experiment.pipeline import ClassifierRun
from prunebench.experiment.run import run_stages
from prunebench.record import RunResult


def run_dense(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> RunResult:
    """Train (or load) ``spec``'s dense checkpoint and report it as a record (no target, no retraining).

    Runs with ``settings.threads`` torch threads and leaves the caller's thread count as it was.
    """
    return run_stages(ClassifierRun(spec, settings, results_dir), settings, results_dir, dense_row=True)
