"""The dense baseline row of a comparison: the shared dense checkpoint, evaluated as is."""

from __future__ import annotations

import time
from pathlib import Path

from prunebench.spec import SPEC_VERSION, ExperimentSpec, RunSettings
from prunebench.experiment.pipeline import dense_checkpoint, prepare
from prunebench.experiment.provenance import provenance
from prunebench.metrics import mac_metrics, size_metrics
from prunebench.metrics.latency import torch_threads
from prunebench.pruning import prunable_parameters
from prunebench.record import Accuracy, Macs, Provenance, RunResult, Sizes, Timings, dense_run_id


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
    dense_id = spec.dense_spec().content_hash()
    return RunResult(
        spec_version=SPEC_VERSION,
        run_id=dense_run_id(dense_id),
        dense_id=dense_id,
        dense_sha256=dense["model_sha256"],  # which weights these figures describe
        spec=spec.dense_spec().model_dump(mode="json"),
        sizes=Sizes.of(size_metrics(model, prunable_parameters(model, spec.prune.prunable))),
        macs=Macs.of(mac_metrics(model, data.input_shape)),
        accuracy=Accuracy(
            top1=dense["test_top1"], top5=dense["test_top5"], val_top1=dense["val_top1"],
            dense_top1=dense["test_top1"], dense_top5=dense["test_top5"], dense_val_top1=dense["val_top1"],
        ),
        timings=Timings(dense_train=0.0 if dense["cached"] else dense["wall_time_s"], wall=time.perf_counter() - started),
        provenance=Provenance(**provenance(settings.device), dataset_checksums=data.checksums, dense_cached=dense["cached"]),
    )
