"""The one run skeleton (experiment/run.py) and the one record builder (experiment/result.py),
driven by a model kind that records which stage ran when: the order of the stages, what a dense
row and a reused run skip, and that result.json is written last."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from prunebench.spec import ExperimentSpec, PruneSpec, RunSettings
from prunebench.experiment.result import DenseOutcome, Measured, Perplexities, PruneOutcome
from prunebench.experiment.run import run_stages
from prunebench.record import Macs, RunResult, Sizes, dense_run_id, read_result
from prunebench.store.layout import RESULT_FILE

SPEC = ExperimentSpec(dataset="synthetic", model="mlp", prune=PruneSpec(compression=6))
SIZES = Sizes(params_total=12, params_nonzero=2, prunable_total=10, prunable_nonzero=1, compression_ratio=6.0,
              prunable_compression_ratio=10.0, sparsity=0.9)
MACS = Macs(dense=10, effective=2, theoretical_speedup=5.0)


class Recording:
    """A model kind whose stages only note that they ran (and what the record builder gets)."""

    def __init__(self, stored: RunResult | None = None) -> None:
        self.spec = SPEC
        self.calls: list[str] = []
        self.stored = stored

    @property
    def checksums(self) -> Mapping[str, str]:
        return {"train": "abc"}

    def reusable(self) -> RunResult | None:
        self.calls.append("reusable")
        return self.stored

    def load(self, *, prune: bool) -> None:
        self.calls.append(f"load(prune={prune})")

    def dense(self) -> DenseOutcome:
        self.calls.append("dense")
        return DenseOutcome(cached=True, sha256="d" * 64)

    def prune(self) -> PruneOutcome:
        self.calls.append("prune")
        return PruneOutcome(prune_s=1.0, retrain_s=2.0)

    def measure(self, dense: DenseOutcome, pruned: PruneOutcome | None) -> Measured:
        self.calls.append("measure(pruned)" if pruned else "measure(dense)")
        return Measured(sizes=SIZES, macs=MACS, perplexity=Perplexities(dense=3.0, pre_recovery=5.0, final=4.0))

    def save(self, run_dir: Path) -> None:
        self.calls.append("save")
        assert not (run_dir / RESULT_FILE).exists()  # artifacts first: result.json marks the run done
        run_dir.mkdir(parents=True)
        (run_dir / "mask.pt").write_bytes(b"")


def test_a_run_goes_through_the_stages_in_order_and_is_recorded_last(tmp_path: Path) -> None:
    kind = Recording()
    result = run_stages(kind, RunSettings(threads=1), tmp_path)
    assert kind.calls == ["reusable", "load(prune=True)", "dense", "prune", "measure(pruned)", "save"]
    assert result.run_id == SPEC.run_id and result.target == SPEC.target and result.spec == SPEC.recorded()
    assert result.dense_id == SPEC.dense_spec().content_hash() and result.dense_sha256 == "d" * 64
    assert (result.dense_perplexity, result.pre_finetune_perplexity, result.perplexity) == (3.0, 5.0, 4.0)
    assert result.timings.prune == 1.0 and result.timings.retrain == 2.0 and result.timings.dense_train == 0.0
    assert result.provenance.dense_cached and result.provenance.dataset_checksums == {"train": "abc"}
    written = tmp_path / SPEC.run_id / RESULT_FILE
    assert read_result(written) == result
    assert json.loads(written.read_text()) == result.model_dump(mode="json")


def test_a_dense_row_measures_the_dense_model_and_writes_no_run_folder(tmp_path: Path) -> None:
    kind = Recording()
    result = run_stages(kind, RunSettings(threads=1), tmp_path, dense_row=True)
    assert kind.calls == ["load(prune=False)", "dense", "measure(dense)"]
    dense_id = SPEC.dense_spec().content_hash()
    assert result.run_id == dense_run_id(dense_id) and result.dense_id == dense_id
    assert result.target is None and result.retraining is None and result.cost is None
    assert result.spec == SPEC.dense_spec().model_dump(mode="json")
    assert result.timings.prune == 0.0 and result.timings.retrain == 0.0
    assert not any(tmp_path.iterdir())


def test_a_stored_run_is_returned_without_running_a_stage(tmp_path: Path) -> None:
    first = run_stages(Recording(), RunSettings(threads=1), tmp_path / "a")
    kind = Recording(stored=first)
    assert run_stages(kind, RunSettings(threads=1), tmp_path / "b") is first
    assert kind.calls == ["reusable"] and not (tmp_path / "b").exists()


@pytest.mark.parametrize("dense_row", [False, True])
def test_the_callers_thread_count_is_left_as_it_was(tmp_path: Path, dense_row: bool) -> None:
    before = torch.get_num_threads()
    run_stages(Recording(), RunSettings(threads=1 if before != 1 else 2), tmp_path, dense_row=dense_row)
    assert torch.get_num_threads() == before
