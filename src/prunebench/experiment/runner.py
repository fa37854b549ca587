"""Run a plan: check it, register it in the results database, execute what is not done.

Resuming is the same call: completed runs are skipped; runs left 'running' by an interrupted
sweep, and failed ones, are run again under the same run id, so nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.config import ExperimentSpec
from prunebench.data import load_dataset
from prunebench.errors import ConfigError, Interrupted
from prunebench.executors.base import Executor, Outcome
from prunebench.experiment.jobs import job_function
from prunebench.models import create_model
from prunebench.experiment.progress import SweepProgress
from prunebench.experiment.sweep import Job, Plan
from prunebench.pruning.prune import keep_count
from prunebench.store import ResultsDB

log = logging.getLogger("prunebench")


def preflight(plan: Plan) -> None:
    """Raise on anything that would fail every run (data files, unreachable targets) — before writing."""
    shapes: dict[str, tuple[tuple[int, ...], int]] = {}
    for job in plan.jobs:
        spec = job.spec
        if spec.dataset not in shapes:
            data = load_dataset(
                spec.dataset, data_dir=plan.settings.data_dir, val_fraction=spec.val_fraction,
                download=plan.settings.download,
            )
            shapes[spec.dataset] = (data.input_shape, data.num_classes)
    models: dict[tuple[str, str], nn.Module] = {}  # keep_count only reads: one build per pair
    checked: set[tuple[str, str, str]] = set()
    for job in plan.pruned_jobs:
        spec = job.spec
        pair = (spec.dataset, spec.model)
        if pair not in models:
            models[pair] = model_for(spec.model, spec.dataset, *shapes[spec.dataset])
        key = (*pair, spec.prune.model_dump_json())
        if key not in checked:
            checked.add(key)
            keep_count(models[pair], spec.prune)


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


def recipe_id(spec: ExperimentSpec) -> str:
    """What must be equal for a fair comparison: the fine-tuning recipe and retraining mode."""
    payload = json.dumps([spec.finetune.canonical_json(), spec.retrain.canonical_json()])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def row_for(job: Job) -> dict[str, Any]:
    spec = job.spec
    pruned = job.kind == "pruned"
    return {
        "run_id": job.run_id,
        "kind": job.kind,
        "dataset": spec.dataset,
        "model": spec.model,
        "strategy": spec.prune.strategy if pruned else "dense",
        "scope": spec.prune.scope if pruned else None,
        "target_compression": spec.prune.target[1] if pruned else 1.0,  # the level: a ratio, or a channel target
        "seed": spec.seed,
        "dense_id": spec.dense_spec().content_hash(),
        "finetune_id": recipe_id(spec) if pruned else None,
        "spec": spec.model_dump(mode="json") if pruned else spec.dense_spec().model_dump(mode="json"),
    }


def run_plan(plan: Plan, results_dir: Path, executor: Executor, live: bool | None = None) -> Counter[str]:
    """Execute every job of ``plan`` that is not completed yet; returns the final status counts.

    The plan is checked first (:func:`preflight`): bad input raises before anything is written.
    """
    preflight(plan)
    db = ResultsDB(results_dir)
    for job in plan.jobs:
        db.register(row_for(job))
    todo = [job for job in plan.jobs if db.status_of(job.run_id) != "completed"]
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
