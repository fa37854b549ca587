"""Channel pruning, scratch baselines and latency through the run pipeline and the report."""

import json
from pathlib import Path

import pytest
import torch

from prunebench.spec import ExperimentSpec, PruneSpec, RetrainSpec, RunSettings, TrainSpec
from prunebench.errors import ConfigError
from prunebench.executors import make_executor
from prunebench.experiment import run_experiment
from prunebench.store.artifacts import load_tensors
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.record import Target, load_result
from prunebench.report import write_report

TRAIN = TrainSpec(epochs=1, lr=0.05, batch_size=64)
FINETUNE = TrainSpec(epochs=1, lr=0.01, batch_size=64)
LATENCY = RunSettings(threads=1, latency=True, latency_repeats=3, latency_batch_size=8,
                      latency_forms=("eager", "bn-folded"))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_channel_pruned_run_is_compacted_timed_and_stays_zero(tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    spec = ExperimentSpec(
        dataset="synthetic", model="resnet-20", train=TRAIN, finetune=FINETUNE,
        prune=PruneSpec(strategy="l1_filter", structure="channel", speedup=2, score_batches=1),
    )
    result = run_experiment(spec, LATENCY, tmp_path)
    assert result.target == Target(kind="speedup", value=2.0)
    assert result.macs.theoretical_speedup >= 2.0
    latency = result.latency
    assert latency.device == "cpu" and latency.dtype == "float32"
    assert latency.runtime == "torch-eager" and latency.allocator
    assert latency.compacted and latency.batch_size == 8 and latency.threads == 1
    assert result.latency.measured_speedup > 0
    # every form asked for, the first one's times on top, each model's fastest form beside
    assert [(f.runtime, f.form) for f in latency.forms] == [("torch-eager", "eager"), ("torch-eager", "bn-folded")]
    assert latency.form == "eager" and latency.dense_ms == latency.forms[0].dense_ms
    best = latency.best
    assert best is not None and best.dense_ms == min(f.dense_ms for f in latency.forms)
    assert best.pruned_ms == min(f.pruned_ms for f in latency.forms)
    assert best.measured_speedup == pytest.approx(best.dense_ms / best.pruned_ms)
    # a result.json written before forms existed loads as eager
    old = json.loads((tmp_path / spec.run_id / "result.json").read_text())
    for key in ("form", "forms", "best"):
        del old["latency"][key]
    assert load_result(old).latency.form == "eager" and load_result(old).latency.forms == []
    mask = load_tensors(tmp_path / spec.run_id / "mask.pt")
    weights = load_tensors(tmp_path / spec.run_id / "model.pt")
    assert any(".bn" in name for name in mask)  # batch-norm scales go with their channels
    for name, keep in mask.items():
        assert torch.count_nonzero(weights[name][~keep]) == 0, name


@pytest.mark.parametrize("mode", ["scratch-e", "scratch-b"])
def test_scratch_baselines_train_for_their_budget(tmp_path: Path, mode: str) -> None:
    spec = ExperimentSpec(
        dataset="synthetic", model="mlp", train=TrainSpec(epochs=2, lr=0.05, batch_size=64), finetune=FINETUNE,
        prune=PruneSpec(strategy="magnitude", compression=3), retrain=RetrainSpec(mode=mode),
    )
    result = run_experiment(spec, RunSettings(threads=1), tmp_path)
    budget = 2 if mode == "scratch-e" else round(2 * result.macs.dense / result.macs.effective)
    assert result.retraining.recipe["epochs"] == budget == len(result.retraining.log)
    assert budget > 2 or mode == "scratch-e"


@pytest.mark.parametrize(
    ("prune", "message"),
    [
        ({"strategy": "magnitude", "speedup": 2}, "needs prune.structure 'channel'"),
        ({"strategy": "l1_filter", "structure": "channel", "schedule": "iterative"}, "needs prune.schedule 'one-shot'"),
        ({"strategy": "l1filter", "structure": "channel"}, "did you mean l1_filter"),
        ({"strategy": "l1_filter"}, "scores channels: it needs prune.structure 'channel'"),
        ({"strategy": "fpgm", "structure": "channel", "speedup": 2, "compression": 4}, "each set the target: give one"),
    ],
)
def test_channel_settings_are_validated(prune: dict, message: str) -> None:
    with pytest.raises((ConfigError, ValueError)) as error:
        PruneSpec(**prune)
    assert message in str(error.value)


def test_latency_forms_and_runtimes_are_validated() -> None:
    with pytest.raises(ValueError, match=r"latency_forms\n.*unknown 'fused' \(allowed: one or more of eager, bn-folded, bn-folded-channels-last"):
        RunSettings(latency_forms=["eager", "fused"])
    with pytest.raises(ValueError, match=r"latency_runtimes\n.*allowed: one or more of torch, torch-compile, onnxruntime"):
        RunSettings(latency_runtimes=[])


def test_crop_flip_augmentation_trains_deterministically(tmp_path: Path) -> None:
    recipe = TrainSpec(epochs=1, lr=0.05, batch_size=64, augment="crop-flip")
    spec = ExperimentSpec(dataset="synthetic", model="mlp", train=recipe, finetune=FINETUNE)
    first = run_experiment(spec, RunSettings(threads=1), tmp_path / "a")
    second = run_experiment(spec, RunSettings(threads=1), tmp_path / "b")
    assert first.accuracy.top1 == second.accuracy.top1 and first.accuracy.dense_top1 == second.accuracy.dense_top1
    plain = run_experiment(spec.model_copy(update={"train": TRAIN}), RunSettings(threads=1), tmp_path / "c")
    assert plain.dense_id != first.dense_id


def test_report_draws_measured_against_theoretical_speedup(tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    plan = plan_from_mapping({
        "dataset": "synthetic", "model": "resnet-20", "threads": 1, "latency": True, "latency_repeats": 3,
        "latency_batch_size": 8, "latency_forms": ["eager", "bn-folded"], "baselines": False,
        "train": TRAIN.model_dump(), "finetune": FINETUNE.model_dump(),
        "prune": {"strategy": "l1_filter", "structure": "channel", "score_batches": 1},
        "sweep": {"prune.speedup": [1.5, 2.5]},
    })
    statuses = run_plan(plan, tmp_path / "r", make_executor("serial"), live=False)
    assert statuses["completed"] == 3
    write_report(tmp_path / "r", tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"synthetic-resnet-20-measured-speedup.png", "synthetic-resnet-20-top1-vs-latency.png"} <= names
    assert "measured speedup" in (tmp_path / "out" / "report.html").read_text()
    table = (tmp_path / "out" / "synthetic-resnet-20-latency.md").read_text()
    rows = [line for line in table.splitlines() if "l1_filter" in line]
    assert len(rows) == 2 * 3  # two speedup levels x (eager, bn-folded, each model's fastest)
    assert sum("| bn-folded |" in r for r in rows) == 2 and sum("each model's fastest" in r for r in rows) == 2
    assert all("torch-eager" in r for r in rows if "bn-folded" in r)
