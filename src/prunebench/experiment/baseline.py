"""The dense baseline row of a comparison: the shared dense checkpoint, evaluated as is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prunebench.config import ExperimentSpec, RunSettings
from prunebench.experiment.pipeline import dense_checkpoint, prepare
from prunebench.experiment.provenance import provenance
from prunebench.metrics import mac_metrics, size_metrics
from prunebench.metrics.latency import torch_threads
from prunebench.pruning import prunable_parameters


def run_dense(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> dict[str, Any]:
    """Train (or load) ``spec``'s dense checkpoint and report it with the pruned runs' keys.

    Runs with ``settings.threads`` torch threads and leaves the caller's thread count as it was.
    """
    with torch_threads(settings.threads):
        return _run_dense(spec, settings, results_dir)


def _run_dense(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    data, model = prepare(spec, settings)
    dense = dense_checkpoint(spec, data, model, results_dir)
    sizes = size_metrics(model, prunable_parameters(model, spec.prune.prunable))
    macs = mac_metrics(model, data.input_shape)
    return {
        "dense_id": spec.dense_spec().content_hash(),
        "spec": spec.dense_spec().model_dump(mode="json"),
        "target_compression": 1.0,
        "compression_ratio": sizes.compression_ratio,
        "prunable_compression_ratio": sizes.prunable_compression_ratio,
        "theoretical_speedup": 1.0,
        "params_total": sizes.params_total,
        "params_nonzero": sizes.params_nonzero,
        "macs_dense": macs.dense_total,
        "macs_effective": macs.dense_total,
        "dense_top1": dense["test_top1"],
        "pre_finetune_top1": dense["test_top1"],
        "top1": dense["test_top1"],
        "top5": dense["test_top5"],
        "dense_cached": dense["cached"],
        "wall_time_s": time.perf_counter() - started,
        "dataset_checksums": data.checksums,
        "provenance": provenance(settings.device),
    }
