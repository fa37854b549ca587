"""The dense baseline row of a comparison: the shared dense checkpoint, evaluated as is."""

from __future__ import annotations

import time
from pathlib import Path

from prunebench.spec import ExperimentSpec, RunSettings
from prunebench.experiment.pipeline import dense_checkpoint, prepare
from prunebench.experiment.result import DenseOutcome, Measured, build_result
from prunebench.metrics import mac_metrics, size_metrics
from prunebench.metrics.latency import torch_threads
from prunebench.pruning import prunable_parameters
from prunebench.record import Accuracy, Macs, RunResult, Sizes


def run_dense(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> RunResult:
    """Train (or load) ``spec``'s dense checkpoint and report it as a record (no target, no retraining).

    Runs with ``settings.threads`` torch threads and leaves the caller's thread count as it was.
    """
    with torch_threads(settings.threads):
        return _run_dense(spec, settings, results_dir)


def _run_dense(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> RunResult:
    started = time.perf_counter()
    data, model = prepare(spec, settings)
    dense = dense_checkpoint(spec, data, model, results_dir)
    return build_result(
        spec,
        dense=DenseOutcome(cached=dense["cached"], train_s=0.0 if dense["cached"] else dense["wall_time_s"],
                           sha256=dense["model_sha256"]),  # which weights these figures describe
        pruned=None,
        measured=Measured(
            sizes=Sizes.of(size_metrics(model, prunable_parameters(model, spec.prune.prunable))),
            macs=Macs.of(mac_metrics(model, data.input_shape)),
            accuracy=Accuracy(
                top1=dense["test_top1"], top5=dense["test_top5"], val_top1=dense["val_top1"],
                dense_top1=dense["test_top1"], dense_top5=dense["test_top5"], dense_val_top1=dense["val_top1"],
            ),
        ),
        device=settings.device, checksums=data.checksums, wall_s=time.perf_counter() - started,
    )
