"""The headline check on real data: LeNet-300-100, global magnitude, 10x, 2 fine-tuning epochs."""

from pathlib import Path

from conftest import SHARED_DATA, has_dataset
import pytest

from prunebench.spec import ExperimentSpec, PruneSpec, RunSettings, TrainSpec
from prunebench.experiment import run_experiment

# Ten epochs of LeNet-300-100 on all of MNIST: a minute or more on 2 cores, by nature.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not has_dataset("mnist"), reason=f"MNIST not in {SHARED_DATA}")]


def test_lenet_300_100_global_magnitude_10x_reaches_97_5(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        dataset="mnist",
        model="lenet-300-100",
        train=TrainSpec(epochs=8, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=128),
        prune=PruneSpec(strategy="magnitude", scope="global", compression=10),
        finetune=TrainSpec(epochs=2, lr=0.01, momentum=0.9, batch_size=128),
    )
    result = run_experiment(spec, RunSettings(data_dir=SHARED_DATA, download=False), tmp_path)
    assert result.sizes.compression_ratio == pytest.approx(10, rel=1e-4)
    assert result.accuracy.test_examples == 10_000
    assert result.accuracy.top1 >= 0.975, result.accuracy.top1
