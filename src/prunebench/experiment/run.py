"""The one run skeleton: load, dense, prune (then retrain or recover), measure, record.

Classifier runs, language-model runs and the dense baseline rows of both go through
:func:`run_stages`; a model kind supplies the stages (:class:`ModelKind`), so the order of the
stages, what is skipped for a dense row, and how a run is recorded live here alone.

Pruning and retraining are one stage: a classifier's schedule interleaves them (iterative
pruning retrains between rounds, gradual pruning prunes while it trains), a language model
prunes once and then recovers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from prunebench.spec import ExperimentSpec, RunSettings
from prunebench.experiment.result import DenseOutcome, Measured, PruneOutcome, build_result
from prunebench.metrics.latency import torch_threads
from prunebench.record import RunResult
from prunebench.store.artifacts import write_json
from prunebench.store.layout import RESULT_FILE


class ModelKind(Protocol):
    """One model kind's stages for one run of ``spec``; an instance serves a single run and keeps
    what its stages hand each other (data, model, mask) itself."""

    @property
    def spec(self) -> ExperimentSpec: ...

    def reusable(self) -> RunResult | None:
        """The run's stored record, if one exists that can be trusted (then nothing runs)."""
        ...

    def load(self, *, prune: bool) -> None:
        """Read model and data and check everything that can reject the input, writing nothing.
        ``prune``: the run will prune (a dense row skips the pruning's checks)."""
        ...

    def dense(self) -> DenseOutcome:
        """The dense model every method prunes: trained once and cached, or pretrained."""
        ...

    def prune(self) -> PruneOutcome:
        """Prune the dense model, then retrain or recover it (in the order its schedule says)."""
        ...

    def measure(self, dense: DenseOutcome, pruned: PruneOutcome | None) -> Measured:
        """What the record reports about the model as it is now (``pruned`` None: the dense model)."""
        ...

    @property
    def checksums(self) -> Mapping[str, str]:
        """The checksums of the data the run read, for its provenance."""
        ...

    def save(self, run_dir: Path) -> None:
        """The run's artifacts (mask, weights) into ``run_dir``; result.json is written after them."""
        ...


def run_stages(kind: ModelKind, settings: RunSettings, results_dir: Path, *, dense_row: bool = False) -> RunResult:
    """Run (or reuse) one run of ``kind.spec`` and return its record.

    ``dense_row``: the dense baseline row of the spec's comparison: the dense model measured as
    is, not pruned; its record is kept by the plan's database, not written into a run folder.
    Runs with ``settings.threads`` torch threads and leaves the caller's thread count as it was.
    """
    with torch_threads(settings.threads):
        started = time.perf_counter()
        if not dense_row:
            reused = kind.reusable()
            if reused is not None:
                return reused
        kind.load(prune=not dense_row)
        dense = kind.dense()
        pruned = None if dense_row else kind.prune()
        measured = kind.measure(dense, pruned)
        result = build_result(kind.spec, dense=dense, pruned=pruned, measured=measured, device=settings.device,
                              checksums=kind.checksums, wall_s=time.perf_counter() - started)
        if not dense_row:
            run_dir = results_dir / result.run_id
            kind.save(run_dir)
            write_json(run_dir / RESULT_FILE, result.model_dump(mode="json"))  # last: its presence marks the run done
        return result
