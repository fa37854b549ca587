"""The one :class:`~prunebench.record.RunResult` builder.

Every run (a classifier's, a language model's, a dense baseline row of either) hands its
stages' outputs here as the typed objects below, so which record field holds what, and how a
dense row differs from a pruned run, is decided in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prunebench.spec import SPEC_VERSION, ExperimentSpec
from prunebench.experiment.provenance import provenance
from prunebench.record import (
    Accuracy, Cost, LanguageModel, Latency, Macs, Provenance, Retraining, RunResult, Sizes, Storage, TaskScore,
    Timings, Trainability, dense_run_id,
)


@dataclass(frozen=True)
class DenseOutcome:
    """The dense stage: the weights every method of a comparison prunes."""

    cached: bool  # reused from an earlier run of the same dense spec
    train_s: float = 0.0  # seconds spent training them in this run (0 when cached, or for a pretrained model)
    # The dense checkpoint's digest; None for a language model, whose dense weights are its pretrained
    # file (LanguageModel.pretrained_sha256).
    sha256: str | None = None


@dataclass(frozen=True)
class PruneOutcome:
    """The prune stage, and the retraining or recovery after it: the record's part of it."""

    prune_s: float  # scoring and selection
    retrain_s: float  # all (re)training after the dense weights (a language model: recovery)
    compress_s: float = 0.0  # the compress stage (weight sharing, centroid fine-tuning, coding)
    retraining: Retraining | None = None  # classifiers: schedule, mode, recipe and logs
    trainability: Trainability | None = None
    cost: Cost | None = None


@dataclass(frozen=True)
class Perplexities:
    """A language model's perplexities on the evaluation split."""

    dense: float  # the pretrained model
    pre_recovery: float  # right after pruning
    final: float  # after recovery (equal to pre_recovery without one)


@dataclass(frozen=True)
class Measured:
    """The measure stage: what the record reports about the model the run ends with."""

    sizes: Sizes
    macs: Macs
    accuracy: Accuracy | None = None  # classifiers
    perplexity: Perplexities | None = None  # language models
    dense_tasks: dict[str, TaskScore] | None = None  # language models with evaluation.tasks
    tasks: dict[str, TaskScore] | None = None
    language_model: LanguageModel | None = None
    latency: Latency | None = None
    storage: Storage | None = None  # only with a compress stage


def build_result(
    spec: ExperimentSpec,
    *,
    dense: DenseOutcome,
    pruned: PruneOutcome | None,
    measured: Measured,
    device: str,
    checksums: Mapping[str, str],
    wall_s: float,
) -> RunResult:
    """The record of one run; ``pruned`` None: the dense baseline row of ``spec``'s comparison
    (its dense spec as the spec, its own run id, no target and no retraining).

    ``device`` and ``checksums`` (of the data the run read) go into the provenance."""
    dense_spec = spec.dense_spec()
    dense_id = dense_spec.content_hash()
    if pruned is None:
        run_id, spec_json, target = dense_run_id(dense_id), dense_spec.model_dump(mode="json"), None
    else:
        run_id, spec_json, target = spec.run_id, spec.recorded(), spec.target
    perplexity = measured.perplexity
    return RunResult(
        spec_version=SPEC_VERSION,
        run_id=run_id,
        dense_id=dense_id,
        dense_sha256=dense.sha256,  # the exact weights this run pruned (or a dense row describes)
        spec=spec_json,
        target=target,
        sizes=measured.sizes,
        macs=measured.macs,
        accuracy=measured.accuracy,
        dense_perplexity=perplexity.dense if perplexity else None,
        pre_finetune_perplexity=perplexity.pre_recovery if perplexity else None,
        perplexity=perplexity.final if perplexity else None,
        dense_tasks=measured.dense_tasks,
        tasks=measured.tasks,
        language_model=measured.language_model,
        latency=measured.latency,
        retraining=pruned.retraining if pruned else None,
        storage=measured.storage,
        trainability=pruned.trainability if pruned else None,
        cost=pruned.cost if pruned else None,
        timings=Timings(
            dense_train=dense.train_s,
            prune=pruned.prune_s if pruned else 0.0,
            retrain=pruned.retrain_s if pruned else 0.0,
            compress=pruned.compress_s if pruned else 0.0,
            wall=wall_s,
        ),
        provenance=Provenance(**provenance(device), dataset_checksums=dict(checksums), dense_cached=dense.cached),
    )
