"""Pruned weights stay exactly 0.0 while training, whatever the optimizer."""

import pytest
import torch

from prunebench.spec import PruneSpec, TrainSpec
from prunebench.data import DataSplits
from prunebench.models import create_model
from prunebench.pruning import KeepPruned
from prunebench.pruning.prune import prune_model
from prunebench.train import train

RECIPES = {
    "sgd-momentum-wd": TrainSpec(epochs=10, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=108),
    "adam": TrainSpec(epochs=10, optimizer="adam", lr=1e-3, batch_size=108),
    "adamw": TrainSpec(epochs=10, optimizer="adamw", lr=1e-3, weight_decay=0.01, batch_size=108),
}


@pytest.mark.parametrize("recipe", RECIPES)
def test_pruned_weights_stay_exactly_zero_for_100_steps(synthetic: DataSplits, recipe: str) -> None:
    model = create_model("mlp", synthetic.input_shape, synthetic.num_classes)
    train(model, synthetic, RECIPES["adam"].model_copy(update={"epochs": 1}), seed=0)  # nonzero optimizer-relevant state
    mask = prune_model(model, synthetic, PruneSpec(strategy="magnitude", compression=5), seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    log = train(model, synthetic, RECIPES[recipe], seed=1, callbacks=[KeepPruned(model, mask)])
    assert log.steps == 100  # 1080 training examples / 108 per batch x 10 epochs
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        assert torch.count_nonzero(params[name][~keep]) == 0, name
        assert not torch.equal(params[name][keep], before[name][keep]), "survivors must train"


def test_pruned_state_dict_loads_into_the_unpruned_architecture() -> None:
    images = DataSplits.from_tensors(
        train=(torch.randn(64, 1, 28, 28), torch.arange(64) % 10), test=(torch.randn(8, 1, 28, 28), torch.arange(8))
    )
    model = create_model("lenet-5", images.input_shape, images.num_classes)
    mask = prune_model(model, images, PruneSpec(strategy="magnitude", compression=3), seed=0)
    assert type(model).__name__ == "LeNet5"
    fresh = create_model("lenet-5", images.input_shape, images.num_classes)
    assert set(fresh.state_dict()) == set(model.state_dict())
    fresh.load_state_dict(model.state_dict())
    x = images.test_x
    assert torch.equal(fresh(x), model(x))
    assert mask.kept < mask.total
