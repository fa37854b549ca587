"""Run a plan: check it, register it in the results database, execute what is not done.

Resuming is the same call: completed runs are skipped; runs left 'running' by an interrupted
sweep, and failed ones, are run again under the same run id, so nothing is duplicated.
One process at a time runs a plan on a results directory (``store.lock``): a second one waits,
then skips what the first completed.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.data import default_data_dir, load_dataset
from prunebench.data.base import take_subset
from prunebench.spec import ExperimentSpec
from prunebench.devices import check_device
from prunebench.errors import ConfigError, Interrupted
from prunebench.executors.base import Executor, Outcome
from prunebench.plan.jobs import job_function
from prunebench.models import create_model
from prunebench.models.checkpoint import fit_state_dict, read_state_dict
from prunebench.plan.progress import SweepProgress
from prunebench.experiment.lm import check_lm
from prunebench.experiment.pipeline import check_digest
from prunebench.experiment.schedules import check_schedule
from prunebench.plan.sweep import Job, Plan
from prunebench.pruning.prune import keep_count
from prunebench.store import ResultsDB
from prunebench.store.layout import completed_dense, completed_result
from prunebench.store.lock import results_lock
from prunebench.store.db import check_results_dir
from prunebench.store.files import remove_leftovers
from prunebench.train.step import check_precision

log = logging.getLogger("prunebench")


def require_packages(plan: Plan) -> None:
    """An optional package a run needs is refused now, with its install hint, not after the dense
    model has trained: Torch-Pruning for channel pruning, ONNX Runtime for its latency."""
    from prunebench.spec import CHANNEL
    from prunebench.latency_names import ONNX

    if any(not job.spec.is_lm and job.spec.prune.structure == CHANNEL for job in plan.pruned_jobs):
        from prunebench.pruning.channels.graph import require_torch_pruning

        require_torch_pruning()
    if plan.settings.latency and ONNX in plan.settings.latency_runtimes:
        from prunebench.metrics.latency import require_onnxruntime

        require_onnxruntime()


def preflight(plan: Plan, results_dir: Path | None = None, *, local_device: bool = True) -> None:
    """Raise on anything that would fail every run — before anything is written.

    The results directory and the device first (cheap), then each dataset split (its training
    set must not be empty), the pruning targets and each schedule's steps, which need the
    dataset's size. ``local_device``: the runs use this process's torch (not a cluster's).
    """
    if results_dir is not None:
        check_results_dir(results_dir)
    if local_device:
        check_device(plan.settings.device)
        for job in plan.jobs:  # e.g. fp16 where this torch has no such autocast
            check_precision(job.spec.train, plan.settings.device, "train")
            check_precision(job.spec.finetune, plan.settings.device, "finetune")
    require_packages(plan)
    data_dir = plan.settings.data_dir or default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"data_dir: {data_dir} is a file, not a directory")
    checked: set[str] = set()
    for job in plan.jobs:  # language models: the model, its text, calibration size and N:M fit
        if job.spec.is_lm:
            key = job.spec.model_copy(update={"seed": 0}).canonical_json()  # the checks hold for every seed
            if key not in checked:
                checked.add(key)
                check_lm(job.spec, plan.settings)
    splits: dict[tuple[str, float], list[Job]] = {}  # one load per split, dropped once checked
    for job in (j for j in plan.jobs if not j.spec.is_lm):
        splits.setdefault((job.spec.dataset, job.spec.val_fraction), []).append(job)
    models: dict[tuple[str, str], nn.Module] = {}  # the checks only read: one build per pair
    fitted: set[tuple[str, str, str | None]] = set()  # (dataset, model, checkpoint digest)
    for (dataset, val_fraction), jobs in splits.items():
        data = load_dataset(
            dataset, data_dir=plan.settings.data_dir, val_fraction=val_fraction, download=plan.settings.download,
            streaming=plan.settings.streaming, workers=plan.settings.data_workers,
        )
        if data.train_x.shape[0] == 0:
            n = data.val_x.shape[0]
            raise ConfigError(
                f"val_fraction: {val_fraction:g} holds out all {n} training examples of {dataset}, "
                f"leaving none to train on (allowed: below {1 - 0.5 / n:.6g})"
            )
        for job in jobs:
            spec = job.spec
            trained_on = take_subset(data, spec.subset, spec.seed)  # no more examples than the split has
            pair = (spec.dataset, spec.model)
            if spec.dense.checkpoint is not None and (*pair, spec.dense.sha256) not in fitted:
                fitted.add((*pair, spec.dense.sha256))
                check_checkpoint(spec, model_for(spec.model, spec.dataset, data.input_shape, data.num_classes))
            if job.kind != "pruned":
                continue
            if pair not in models:
                models[pair] = model_for(spec.model, spec.dataset, data.input_shape, data.num_classes)
            key = spec.model_copy(update={"seed": 0}).canonical_json()  # seeds do not change these checks
            if key not in checked:
                checked.add(key)
                keep_count(models[pair], spec.prune)
                check_schedule(spec, trained_on, models[pair])  # e.g. a gradual window past fine-tuning's steps


def check_checkpoint(spec: ExperimentSpec, model: nn.Module) -> None:
    """``dense.checkpoint`` still has its digest and fits ``model`` (a fresh one, left unchanged)."""
    path, digest = spec.dense.checkpoint, spec.dense.sha256
    if path is not None and digest is not None:
        check_digest(path, digest)
        fit_state_dict(spec.model, model, read_state_dict(path))


def model_for(name: str, dataset: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build ``name`` for ``dataset`` and run one example through it: a mismatch is a config error."""
    try:
        model = create_model(name, input_shape, num_classes)
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"model: {name} does not fit {dataset} inputs of shape {input_shape}: {first_line}") from None
    return model


def row_for(job: Job) -> dict[str, Any]:
    spec = job.spec
    pruned = job.kind == "pruned"
    return {
        "run_id": job.run_id,
        "kind": job.kind,
        "role": job.role if pruned else "dense",  # controls are the baselines the sweep added
        "dataset": spec.dataset,
        "model": spec.model,
        "strategy": spec.prune.strategy if pruned else "dense",
        "scope": spec.prune.scope if pruned else None,
        "seed": spec.seed,
        "dense_id": spec.dense_spec().content_hash(),
        "spec": spec.recorded() if pruned else spec.dense_spec().model_dump(mode="json"),
    }


def still_complete(job: Job, row: dict[str, Any], results_dir: Path, digests: dict[str, str | None]) -> bool:
    """A completed row counts only while its files are whole and paired with the dense weights on disk.

    Otherwise (a damaged, deleted or replaced artifact, reported by ``store.layout``) it runs again.
    """
    if job.kind == "pruned":
        return completed_result(results_dir, job.run_id, digests) is not None
    if job.spec.is_lm:  # its dense perplexity is cached and checked against the weights when it runs
        return False
    found = completed_dense(results_dir, job.spec.dense_spec().content_hash())
    recorded = row["result"].dense_sha256 if row.get("result") is not None else None
    return found is not None and recorded in (None, found[1]["model_sha256"])


def run_plan(plan: Plan, results_dir: Path, executor: Executor, live: bool | None = None) -> Counter[str]:
    """Execute every job of ``plan`` that is not completed yet; returns the final status counts.

    The plan is checked first (:func:`preflight`): bad input raises before anything is written.
    """
    preflight(plan, results_dir, local_device=executor.local_device)  # a cluster has its own GPUs
    with results_lock(results_dir):  # held until every job has finished: workers write on our behalf
        return execute_plan(plan, results_dir, executor, live)


def execute_plan(plan: Plan, results_dir: Path, executor: Executor, live: bool | None) -> Counter[str]:
    """:func:`run_plan` once the results directory's lock is held."""
    db = ResultsDB(results_dir)
    # No writer of ours runs yet: temp files of killed writers can go (run, rounds and dense folders)
    remove_leftovers([p for p in (*results_dir.glob("*/"), *results_dir.glob("*/*/")) if p.is_dir()])
    for job in plan.jobs:
        db.register(row_for(job))
    rows = {row["run_id"]: row for row in db.rows()}
    digests: dict[str, str | None] = {}
    todo = [
        job for job in plan.jobs
        if rows[job.run_id]["status"] != "completed" or not still_complete(job, rows[job.run_id], results_dir, digests)
    ]
    skipped = len(plan.jobs) - len(todo)
    if skipped:
        log.info("%d of %d runs already completed; running the other %d", skipped, len(plan.jobs), len(todo))
    progress = SweepProgress(len(todo), live=live)
    failed_dense: set[str] = set()

    def on_done(job: Job, outcome: Outcome) -> None:
        db.finish(job.run_id, outcome.status, outcome.result, outcome.error)
        if job.kind == "dense" and outcome.status != "completed":
            failed_dense.add(job.spec.dense_spec().content_hash())
        progress.finished_job(job, outcome)

    def on_start(job: Job) -> None:
        db.mark_running(job.run_id)
        progress.started_job(job)

    fn = job_function(plan.settings, results_dir)
    try:
        executor.run([j for j in todo if j.kind == "dense"], fn, on_start, on_done)
        runnable = []
        for job in (j for j in todo if j.kind == "pruned"):
            if job.spec.dense_spec().content_hash() in failed_dense:
                db.mark_running(job.run_id)
                on_done(job, Outcome("failed", error="its dense model failed to train"))
            else:
                runnable.append(job)
        executor.run(runnable, fn, on_start, on_done)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through the CLI: runs left 'running' are rerun on resume
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        raise Interrupted(
            signum, f"{progress.finished} of {len(todo)} runs finished before the interrupt"
            + (f" ({skipped} more were already completed)" if skipped else "")
        ) from None
    finally:
        executor.close()
        progress.close()
    statuses = Counter(db.status_of(job.run_id) or "missing" for job in plan.jobs)
    return statuses
