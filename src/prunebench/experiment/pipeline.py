"""dense training (cached) -> prune -> fine-tune -> evaluate, for one :class:`ExperimentSpec`.

How pruning and retraining interleave is the spec's ``prune.schedule`` and ``retrain.mode``
(``prunebench.experiment.schedules``); one-shot + finetune is the plain pipeline.

Layout under the results directory::

    <run_id>/result.json          metrics, resolved spec, provenance
    <run_id>/mask.pt, model.pt    tensors only (load with weights_only=True)
    <run_id>/rounds/mask_NN.pt    iterative schedules: the mask after round NN
    dense/<dense_id>/model.pt     the dense checkpoint every strategy of that seed prunes
    dense/<dense_id>/dense.json   its accuracy and training log

Every stage is skipped when its artifact exists.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.config import CHANNEL, ExperimentSpec, RunSettings
from prunebench.data import DataSplits, load_dataset
from prunebench.experiment.artifacts import load_tensors, read_json, save_tensors, write_json
from prunebench.experiment.provenance import provenance
from prunebench.experiment.schedules import check_schedule, final_recipe, run_schedule
from prunebench.metrics import evaluate, mac_metrics, size_metrics
from prunebench.metrics.latency import interleaved_times, paired_speedup, torch_runner, torch_runtime, torch_threads
from prunebench.pruning.compact import compact
from prunebench.pruning.mask import Mask
from prunebench.models import create_model
from prunebench.pruning import prunable_parameters
from prunebench.pruning.prune import keep_count
from prunebench.train import train

log = logging.getLogger("prunebench")

RESULT_FILE = "result.json"
DENSE_DIR = "dense"


def build_model(spec: ExperimentSpec, data: DataSplits) -> nn.Module:
    """The model with its seeded initial weights; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return create_model(spec.model, data.input_shape, data.num_classes)


def dense_checkpoint(
    spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path
) -> dict[str, Any]:
    """Train the dense model once per DenseSpec; later calls load the same weights."""
    dense = spec.dense_spec()
    folder = results_dir / DENSE_DIR / dense.content_hash()
    if (folder / "dense.json").is_file() and (folder / "model.pt").is_file():
        model.load_state_dict(load_tensors(folder / "model.pt"))
        info = read_json(folder / "dense.json")
        info["cached"] = True
        return info
    started = time.perf_counter()
    history = train(model, data, spec.train, seed=spec.seed, stage="dense")
    test = evaluate(model, data.test_x, data.test_y)
    info = {
        "spec": dense.model_dump(mode="json"),
        "test_top1": test.top1,
        "test_top5": test.top5,
        "val_top1": history.epochs[-1].val_top1 if history.epochs else None,
        "train_log": [asdict(e) for e in history.epochs],
        "wall_time_s": time.perf_counter() - started,
    }
    save_tensors(folder / "model.pt", model.state_dict())
    write_json(folder / "dense.json", info)  # last: its presence marks the stage done
    info["cached"] = False
    return info


def prepare(spec: ExperimentSpec, settings: RunSettings) -> tuple[DataSplits, nn.Module]:
    """Everything that can reject the input (data files, model, reachable target), writing nothing."""
    data = load_dataset(
        spec.dataset, data_dir=settings.data_dir, val_fraction=spec.val_fraction,
        seed=spec.seed, device=settings.device, download=settings.download,
    )
    model = build_model(spec, data).to(settings.device)
    keep_count(model, spec.prune)
    return data, model


def latency_metrics(
    spec: ExperimentSpec, settings: RunSettings, data: DataSplits, model: nn.Module, mask: Mask, results_dir: Path
) -> dict[str, Any]:
    """Dense against pruned latency, timed in turns; channel-pruned models are compacted first.

    An unstructured mask leaves the dense tensors in place, so its measured speedup is ~1x:
    reported as measured, beside the theoretical speedup.
    """
    dense = build_model(spec, data).to(settings.device)
    dense.load_state_dict(load_tensors(results_dir / DENSE_DIR / spec.dense_spec().content_hash() / "model.pt"))
    compacted = spec.prune.structure == CHANNEL
    pruned = compact(model, mask, data.input_shape) if compacted else model
    batch = settings.latency_batch_size
    times = interleaved_times(
        {"dense": torch_runner(dense, data.input_shape, batch), "pruned": torch_runner(pruned, data.input_shape, batch)},
        warmup=3, repeats=settings.latency_repeats,
    )
    speedup, q1, q3 = paired_speedup(times["dense"], times["pruned"])
    runtime, allocator = torch_runtime(settings.device)
    return {
        "measured_speedup": speedup,
        "latency": {
            "runtime": runtime, "allocator": allocator, "device": settings.device, "threads": torch.get_num_threads(),
            "batch_size": batch, "dtype": "float32", "repeats": settings.latency_repeats,
            "dense_ms": statistics.median(times["dense"]), "pruned_ms": statistics.median(times["pruned"]),
            "measured_speedup_iqr": [q1, q3], "compacted": compacted,
        },
    }


def run_experiment(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> dict[str, Any]:
    """Run (or reuse) one experiment and return its ``result.json`` contents.

    Runs with ``settings.threads`` torch threads and leaves the caller's thread count as it was.
    """
    with torch_threads(settings.threads):
        return _run_experiment(spec, settings, results_dir)


def _run_experiment(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> dict[str, Any]:
    run_dir = results_dir / spec.run_id
    if (run_dir / RESULT_FILE).is_file():
        log.info("run %s exists; reusing it", spec.run_id)
        return read_json(run_dir / RESULT_FILE)
    data, model = prepare(spec, settings)
    check_schedule(spec, data, model)
    started = time.perf_counter()
    dense = dense_checkpoint(spec, data, model, results_dir)

    outcome = run_schedule(spec, data, model, results_dir)
    mask, pre, history = outcome.mask, outcome.pre, outcome.history
    final = evaluate(model, data.test_x, data.test_y)

    prunable = prunable_parameters(model, spec.prune.prunable)
    sizes = size_metrics(model, prunable)
    macs = mac_metrics(model, data.input_shape)
    result = {
        "run_id": spec.run_id,
        "dense_id": spec.dense_spec().content_hash(),
        "spec": spec.model_dump(mode="json"),
        "target": {"kind": spec.prune.target[0], "value": spec.prune.target[1]},
        "target_compression": spec.prune.compression if spec.prune.target[0] == "compression" else None,
        "compression_ratio": sizes.compression_ratio,
        "prunable_compression_ratio": sizes.prunable_compression_ratio,
        "sparsity": sizes.sparsity,
        "params_total": sizes.params_total,
        "params_nonzero": sizes.params_nonzero,
        "prunable_total": sizes.prunable_total,
        "prunable_nonzero": sizes.prunable_nonzero,
        "layer_sparsity": sizes.layer_sparsity,
        "macs_dense": macs.dense_total,
        "macs_effective": macs.effective_total,
        "macs_per_layer": {name: {"dense": n, "effective": macs.effective[name]} for name, n in macs.dense.items()},
        "theoretical_speedup": macs.theoretical_speedup,
        "dense_top1": dense["test_top1"],
        "dense_top5": dense["test_top5"],
        "dense_val_top1": dense["val_top1"],
        "pre_finetune_top1": pre.top1,
        "pre_finetune_top5": pre.top5,
        "top1": final.top1,
        "top5": final.top5,
        "loss": final.loss,
        "val_top1": history.epochs[-1].val_top1 if history.epochs else None,
        "test_examples": final.examples,
        "finetune_log": [asdict(e) for e in history.epochs],
        "timings_s": {
            "dense_train": 0.0 if dense["cached"] else dense["wall_time_s"],
            "prune": outcome.prune_time_s,
            "finetune": outcome.train_time_s,  # all (re)training after the dense checkpoint
        },
        "schedule": spec.prune.schedule,
        "structure": spec.prune.structure,
        "retrain_mode": spec.retrain.mode,
        "retrain_recipe": {**final_recipe(spec), "epochs": len(history.epochs)},
        "rounds": outcome.rounds,
        "gradual_updates": outcome.gradual_updates,
        "dense_cached": dense["cached"],
        **(latency_metrics(spec, settings, data, model, mask, results_dir) if settings.latency else {}),
        "wall_time_s": time.perf_counter() - started,
        "dataset_checksums": data.checksums,
        "provenance": provenance(settings.device),
    }
    save_tensors(run_dir / "mask.pt", mask.state_dict())
    for index, round_mask in enumerate(outcome.round_masks, start=1):  # iterative: every rung of the ladder
        save_tensors(run_dir / "rounds" / f"mask_{index:02d}.pt", round_mask.state_dict())
    save_tensors(run_dir / "model.pt", model.state_dict())
    write_json(run_dir / RESULT_FILE, result)  # last: its presence marks the run done
    return result
