"""dense training (cached) -> prune -> fine-tune -> compress (optional) -> evaluate, for one :class:`ExperimentSpec`.

How pruning and retraining interleave is the spec's ``prune.schedule`` and ``retrain.mode``
(``prunebench.experiment.schedules``); one-shot + finetune is the plain pipeline.

Every stage is skipped when its artifact exists and is whole; the layout of the results
directory, and what "whole" means, is ``prunebench.store.layout``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.spec import CHANNEL, ExperimentSpec, RunSettings
from prunebench.data import DataSplits, load_dataset
from prunebench.errors import ConfigError, DataError
from prunebench.experiment.compression import Compressed, compress_model
from prunebench.models.checkpoint import load_checkpoint
from prunebench.store.artifacts import load_tensors, save_tensors, sha256_file, write_json
from prunebench.experiment.run import run_stages
from prunebench.experiment.schedules import ScheduleOutcome, check_schedule, final_recipe, run_schedule
from prunebench.metrics import evaluate, mac_metrics, size_metrics
from prunebench.metrics.latency import FormTiming, best_against_best, time_forms
from prunebench.pruning.channels import CHANNEL_SCORERS, layers_matching
from prunebench.pruning.compact import compact
from prunebench.pruning.mask import Mask
from prunebench.models import create_model
from prunebench.pruning import prunable_parameters
from prunebench.pruning.prune import keep_count
from prunebench.experiment.result import DenseOutcome, Measured, PruneOutcome
from prunebench.record import (
    Accuracy, Cost, Latency, LatencyBest, LatencyForm, Macs, Retraining, RunResult, Sizes, Trainability, load_result,
)
from prunebench.store.layout import (
    DENSE_DIR, DENSE_FILE, MODEL_FILE, completed_dense, completed_result, dense_folder,
)
from prunebench.store.lock import dense_lock
from prunebench.train import train

log = logging.getLogger("prunebench")

SPARSITY_SEED_OFFSET = 2  # the sparsity-training phase's data order differs from fine-tuning's


def build_model(spec: ExperimentSpec, data: DataSplits) -> nn.Module:
    """The model with its seeded initial weights; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return create_model(spec.model, data.input_shape, data.num_classes)


def dense_checkpoint(
    spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path
) -> dict[str, Any]:
    """Train the dense model once per DenseSpec; later calls load the same weights.

    A complete checkpoint is never overwritten: the check and the write happen under the
    checkpoint's lock, so a second writer waits and then loads the first one's weights.
    ``info["model_sha256"]`` names the weights ``model`` now holds.
    """
    dense = spec.dense_spec()
    folder = dense_folder(results_dir, dense.content_hash())
    with dense_lock(folder):
        found = completed_dense(results_dir, dense.content_hash())
        if found is not None:
            state, info = found
            model.load_state_dict(state)
            info["cached"] = True
            return info
        started = time.perf_counter()
        if spec.dense.checkpoint is not None:
            info = loaded_dense(spec, data, model)
        else:
            history = train(model, data, spec.train, seed=spec.seed, stage="dense")
            info = {"val_top1": history.epochs[-1].val_top1 if history.epochs else None,
                    "train_log": [asdict(e) for e in history.epochs]}
        test = evaluate(model, data.test_x, data.test_y)
        info = {
            "spec": dense.model_dump(mode="json"),
            "test_top1": test.top1,
            "test_top5": test.top5,
            **info,
            "wall_time_s": time.perf_counter() - started,
        }
        info["model_sha256"] = save_tensors(folder / MODEL_FILE, model.state_dict())
        write_json(folder / DENSE_FILE, info)  # last: its presence marks the stage done
    info["cached"] = False
    return info


def loaded_dense(spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> dict[str, Any]:
    """The user's checkpoint in ``model``, if the file still has the digest its spec hashed.

    Its accuracy is measured here like a trained one's; it has no training log.
    """
    path, digest = spec.dense.checkpoint, spec.dense.sha256
    if path is None or digest is None:  # DenseSource fills the digest in with the path
        raise RuntimeError("loaded_dense needs a spec with dense.checkpoint")
    check_digest(path, digest)
    load_checkpoint(spec.model, model, path)
    val = evaluate(model, data.val_x, data.val_y) if data.val_x.shape[0] else None
    return {"val_top1": val.top1 if val else None, "train_log": [], "checkpoint": {"path": str(path), "sha256": digest}}


def check_digest(path: Path, digest: str) -> None:
    """``path`` must still hold the bytes whose SHA-256 the spec (and so the run id) names."""
    found = sha256_file(path) if path.is_file() else None
    if found != digest:
        now = f"now {found}" if found else "now missing"
        raise ConfigError(f"dense.sha256: {path} is not the file this spec was made from (sha256 {digest}, {now})")


def stored_result(spec: ExperimentSpec, results_dir: Path) -> RunResult | None:
    """A completed run's stored record, if its folder holds one that can be read (not logged as reused)."""
    stored = completed_result(results_dir, spec.run_id)
    if stored is None:
        return None
    try:
        return load_result(stored)
    except DataError as exc:
        log.warning("ignoring the stored result of run %s (%s); running it again", spec.run_id, exc)
        return None


def reusable_result(spec: ExperimentSpec, results_dir: Path) -> RunResult | None:
    """A completed run's stored record, if its folder holds one that can be trusted."""
    result = stored_result(spec, results_dir)
    if result is not None:
        log.info("run %s exists; reusing it", spec.run_id)
    return result


def prepare(spec: ExperimentSpec, settings: RunSettings) -> tuple[DataSplits, nn.Module]:
    """Everything that can reject the input (data files, model, reachable target), writing nothing."""
    data = load_dataset(
        spec.dataset, data_dir=settings.data_dir, val_fraction=spec.val_fraction,
        seed=spec.seed, device=settings.device, download=settings.download, subset=spec.subset,
        streaming=settings.streaming, workers=settings.data_workers,
    )
    model = build_model(spec, data).to(settings.device)
    keep_count(model, spec.prune)
    return data, model


def latency_metrics(
    spec: ExperimentSpec, settings: RunSettings, data: DataSplits, model: nn.Module, mask: Mask, results_dir: Path
) -> Latency:
    """Dense against pruned latency, timed in turns in every form x runtime of the settings
    (``latency_forms``, ``latency_runtimes``); channel-pruned models are compacted first.

    An unstructured mask leaves the dense tensors in place, so its measured speedup is ~1x:
    reported as measured, beside the theoretical speedup.
    """
    dense = build_model(spec, data).to(settings.device)
    dense.load_state_dict(load_tensors(results_dir / DENSE_DIR / spec.dense_spec().content_hash() / "model.pt"))
    compacted = spec.prune.structure == CHANNEL
    exclude = layers_matching(model, spec.prune.prunable.exclude)
    pruned = compact(model, mask, data.input_shape, exclude) if compacted else model
    batch = settings.latency_batch_size
    models = {"dense": dense, "pruned": pruned}
    timings = time_forms(models, data.input_shape, batch, forms=settings.latency_forms,
                         runtimes=settings.latency_runtimes, warmup=3, repeats=settings.latency_repeats)
    if all(t.skipped for t in timings):  # nothing the settings asked for could run: eager always can
        timings += time_forms(models, data.input_shape, batch, warmup=3, repeats=settings.latency_repeats)
    for t in timings:
        if t.skipped:
            log.warning("latency: %s cannot run %s here: %s", t.runtime, t.form, t.skipped)
    forms = [latency_form(t) for t in timings]
    first = next(t for t in timings if not t.skipped)
    best = best_against_best(timings)
    record = first.records["dense"]
    return Latency(
        runtime=first.runtime, form=first.form, allocator=record.allocator, device=settings.device,
        threads=record.threads, batch_size=batch, dtype=record.dtype, repeats=settings.latency_repeats,
        dense_ms=record.median_ms, pruned_ms=first.records["pruned"].median_ms,
        measured_speedup=first.paired("dense", "pruned")[0], measured_speedup_iqr=first.paired("dense", "pruned")[1:],
        compacted=compacted, forms=forms,
        best=LatencyBest(dense_runtime=best.dense.runtime, dense_form=best.dense.form, dense_ms=best.dense.median_ms,
                         pruned_runtime=best.pruned.runtime, pruned_form=best.pruned.form,
                         pruned_ms=best.pruned.median_ms, measured_speedup=best.speedup),
    )


def latency_form(timing: FormTiming) -> LatencyForm:
    if timing.skipped:
        return LatencyForm(runtime=timing.runtime, form=timing.form, skipped=timing.skipped)
    median, q1, q3 = timing.paired("dense", "pruned")
    return LatencyForm(runtime=timing.runtime, form=timing.form, dense_ms=timing.records["dense"].median_ms,
                       pruned_ms=timing.records["pruned"].median_ms, measured_speedup=median,
                       measured_speedup_iqr=(q1, q3))


def sparsity_training(spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> dict[str, Any] | None:
    """A channel strategy's own training phase before it scores (slimming: Liu et al. 2017's
    L1 penalty on every BN scale), in place on the dense weights.

    It starts from the shared dense checkpoint, so every method still prunes the same model,
    and trains with the ``finetune`` recipe (for ``prune.options.epochs`` epochs) plus the
    strategy's penalty; the paper instead trains from scratch with the penalty.
    """
    if spec.prune.structure != CHANNEL:
        return None
    strategy = CHANNEL_SCORERS.get(spec.prune.strategy)
    if strategy.training_loss is None:
        return None
    options = strategy.parse_options(spec.prune.options)
    epochs = options.epochs if options.epochs is not None else spec.finetune.epochs
    if epochs == 0:
        return None
    started = time.perf_counter()
    recipe = spec.finetune.model_copy(update={"epochs": epochs})
    history = train(model, data, recipe, seed=spec.seed + SPARSITY_SEED_OFFSET, stage="sparsity training",
                    loss_fn=strategy.training_loss(model, options))
    return {"epochs": epochs, "options": asdict(options), "wall_time_s": time.perf_counter() - started,
            "log": [asdict(e) for e in history.epochs]}


class ClassifierRun:
    """A classifier's stages (:class:`prunebench.experiment.run.ModelKind`): the seeded model
    trained once and cached, pruned and retrained on the spec's schedule, compressed where the
    spec says, evaluated on every test example."""

    def __init__(self, spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> None:
        self.spec, self.settings, self.results_dir = spec, settings, results_dir
        self._loaded: tuple[DataSplits, nn.Module] | None = None
        self._dense: dict[str, Any] = {}  # the dense checkpoint's info (dense.json)
        self._outcome: ScheduleOutcome | None = None
        self._compressed: Compressed | None = None

    @property
    def loaded(self) -> tuple[DataSplits, nn.Module]:
        if self._loaded is None:
            raise RuntimeError("the load stage has not run")
        return self._loaded

    @property
    def outcome(self) -> ScheduleOutcome:
        if self._outcome is None:
            raise RuntimeError("the prune stage has not run")
        return self._outcome

    @property
    def checksums(self) -> Mapping[str, str]:
        return self.loaded[0].checksums

    def reusable(self) -> RunResult | None:
        return reusable_result(self.spec, self.results_dir)

    def load(self, *, prune: bool) -> None:
        self._loaded = prepare(self.spec, self.settings)
        if prune:
            check_schedule(self.spec, *self._loaded)

    def dense(self) -> DenseOutcome:
        data, model = self.loaded
        info = self._dense = dense_checkpoint(self.spec, data, model, self.results_dir)
        return DenseOutcome(cached=info["cached"], train_s=0.0 if info["cached"] else info["wall_time_s"],
                            sha256=info["model_sha256"])  # the exact weights this run prunes

    def prune(self) -> PruneOutcome:
        spec, (data, model) = self.spec, self.loaded
        sparsity = sparsity_training(spec, data, model)
        outcome = self._outcome = run_schedule(spec, data, model, self.results_dir)
        compressed = self._compressed = compress_model(spec, data, model, outcome.mask) if spec.compress is not None else None
        history = outcome.history
        return PruneOutcome(
            prune_s=outcome.prune_time_s, retrain_s=outcome.train_time_s,
            compress_s=compressed.seconds if compressed else 0.0,
            retraining=Retraining(
                schedule=spec.prune.schedule, structure=spec.prune.structure, mode=spec.retrain.mode,
                recipe={**final_recipe(spec), "epochs": len(history.epochs)},
                log=[asdict(e) for e in history.epochs], rounds=outcome.rounds, gradual_updates=outcome.gradual_updates,
                sparsity_training=sparsity,
            ),
            trainability=Trainability.of(outcome.trainability) if outcome.trainability is not None else None,
            cost=Cost(prune_s=outcome.prune_time_s + (sparsity["wall_time_s"] if sparsity else 0.0),
                      retrain_s=outcome.train_time_s, prune_peak_mb=outcome.prune_peak_mb, peak_method=outcome.peak_method),
        )

    def measure(self, dense: DenseOutcome, pruned: PruneOutcome | None) -> Measured:
        spec, (data, model), info = self.spec, self.loaded, self._dense
        sizes = Sizes.of(size_metrics(model, prunable_parameters(model, spec.prune.prunable)))
        macs = Macs.of(mac_metrics(model, data.input_shape))
        if pruned is None:  # the dense model: its figures are the dense checkpoint's
            return Measured(sizes=sizes, macs=macs, accuracy=Accuracy(
                top1=info["test_top1"], top5=info["test_top5"], val_top1=info["val_top1"],
                dense_top1=info["test_top1"], dense_top5=info["test_top5"], dense_val_top1=info["val_top1"],
            ))
        outcome, compressed = self.outcome, self._compressed
        storage = compressed.storage if compressed else None
        final = evaluate(model, data.test_x, data.test_y)
        history = outcome.history
        latency = latency_metrics(spec, self.settings, data, model, outcome.mask, self.results_dir) if self.settings.latency else None
        return Measured(
            sizes=sizes.model_copy(update={
                "storage_bytes": storage.storage_bytes if storage else None,
                "storage_compression_ratio": storage.dense_bytes / storage.storage_bytes if storage else None,
            }),
            macs=macs,
            accuracy=Accuracy(
                top1=final.top1, top5=final.top5, loss=final.loss, test_examples=final.examples,
                val_top1=history.epochs[-1].val_top1 if history.epochs else None,
                pre_retrain_top1=outcome.pre.top1, pre_retrain_top5=outcome.pre.top5,
                dense_top1=info["test_top1"], dense_top5=info["test_top5"], dense_val_top1=info["val_top1"],
                quantized_top1=compressed.top1 if compressed else None, quantized_top5=compressed.top5 if compressed else None,
            ),
            latency=latency,
            storage=storage,
        )

    def save(self, run_dir: Path) -> None:
        outcome, (_, model) = self.outcome, self.loaded
        save_tensors(run_dir / "mask.pt", outcome.mask.state_dict())
        for index, round_mask in enumerate(outcome.round_masks, start=1):  # iterative: every rung of the ladder
            save_tensors(run_dir / "rounds" / f"mask_{index:02d}.pt", round_mask.state_dict())
        save_tensors(run_dir / "model.pt", model.state_dict())
        if self._compressed is not None:  # the model decoded from the stored form, weights shared
            save_tensors(run_dir / "quantized.pt", self._compressed.model.state_dict())


def run_experiment(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> RunResult:
    """Run (or reuse) one experiment and return its record (``result.json`` is its JSON).

    Runs with ``settings.threads`` torch threads and leaves the caller's thread count as it was.
    """
    return run_stages(ClassifierRun(spec, settings, results_dir), settings, results_dir)
