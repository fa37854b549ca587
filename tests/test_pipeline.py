"""The prune-and-finetune pipeline: reproducible, cached, honest about what it measured."""

from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.spec import ExperimentSpec, PruneSpec, RunSettings, TrainSpec
from prunebench.data import DataSplits
from prunebench.errors import TrainingDiverged
from prunebench.experiment import run_experiment
from prunebench.store.artifacts import load_tensors
from prunebench.metrics import mac_metrics
from prunebench.models import MODELS, create_model
from prunebench.pruning import prunable_parameters
from prunebench.train import train

TRAIN = TrainSpec(epochs=2, lr=0.05, batch_size=64)
FINETUNE = TrainSpec(epochs=1, lr=0.01, batch_size=64)
TIMING_KEYS = {"timings", "cost", "provenance"}  # wall times and memory, and whether the dense checkpoint was reused


def spec(strategy: str = "grad_magnitude", **changes: object) -> ExperimentSpec:
    return ExperimentSpec(
        dataset="synthetic", model="mlp", train=TRAIN, finetune=FINETUNE,
        prune=PruneSpec(strategy=strategy, compression=6, score_batches=2), **changes,
    )


def test_same_spec_twice_gives_identical_masks_and_metrics(tmp_path: Path) -> None:
    first = run_experiment(spec(), RunSettings(), tmp_path / "a")
    second = run_experiment(spec(), RunSettings(), tmp_path / "b")
    assert first.model_dump(exclude=TIMING_KEYS) == second.model_dump(exclude=TIMING_KEYS)
    masks = [load_tensors(tmp_path / d / first.run_id / "mask.pt") for d in ("a", "b")]
    assert masks[0].keys() == masks[1].keys()
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])


def test_dense_checkpoint_is_shared_and_runs_are_reused(tmp_path: Path) -> None:
    magnitude = run_experiment(spec("magnitude"), RunSettings(), tmp_path)
    random = run_experiment(spec("random"), RunSettings(), tmp_path)
    assert not magnitude.provenance.dense_cached and random.provenance.dense_cached
    assert magnitude.dense_id == random.dense_id and magnitude.accuracy.dense_top1 == random.accuracy.dense_top1
    assert random.timings.dense_train == 0.0
    again = run_experiment(spec("random"), RunSettings(), tmp_path)
    assert again == random  # read back, not rerun
    other_seed = run_experiment(spec("random", seed=1), RunSettings(), tmp_path)
    assert other_seed.dense_id != random.dense_id


def test_result_metrics_are_consistent(tmp_path: Path) -> None:
    result = run_experiment(spec("magnitude"), RunSettings(), tmp_path)
    assert result.sizes.compression_ratio == pytest.approx(6, rel=1e-3)
    assert result.sizes.params_total / result.sizes.params_nonzero == pytest.approx(result.sizes.compression_ratio)
    assert result.macs.dense / result.macs.effective == pytest.approx(result.macs.theoretical_speedup)
    assert result.macs.dense == sum(v.dense for v in result.macs.per_layer.values())
    assert set(result.sizes.layer_sparsity) == {"1.weight", "3.weight"}
    assert 0 <= result.accuracy.pre_retrain_top1 <= 1 and 0 <= result.accuracy.top1 <= result.accuracy.top5 <= 1
    assert result.accuracy.test_examples == 400


def test_diverging_training_is_reported(synthetic: DataSplits) -> None:
    model = create_model("mlp", synthetic.input_shape, synthetic.num_classes)
    with pytest.raises(TrainingDiverged, match="loss became"):
        train(model, synthetic, TrainSpec(epochs=1, lr=1e6, momentum=0.0), seed=0)


class NaNWhenEvaluated(nn.Module):
    """Finite outputs while training, NaN in eval mode: a training loss that looks fine and a
    validation loss that is not."""

    def __init__(self, inputs: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return out if self.training else out * float("nan")


def test_a_nan_validation_loss_is_divergence(synthetic: DataSplits) -> None:
    model = NaNWhenEvaluated(int(torch.tensor(synthetic.input_shape).prod()), synthetic.num_classes)
    with pytest.raises(TrainingDiverged, match=r"validation loss became nan in epoch 1 \(training loss"):
        train(model, synthetic, TrainSpec(epochs=2, lr=0.01), seed=0)


@pytest.mark.parametrize("name", MODELS.names())
def test_model_contract(name: str) -> None:
    """Every registered model builds for 28x28 images, runs, and has prunable weights and MACs."""
    shape = (1, 28, 28)
    model = create_model(name, shape, 10)
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    prunable = prunable_parameters(model)
    assert prunable and all(n.endswith("weight") for n in prunable)
    assert mac_metrics(model, shape).dense_total > 0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        a = create_model(name, shape, 10)
        torch.manual_seed(0)
        b = create_model(name, shape, 10)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
