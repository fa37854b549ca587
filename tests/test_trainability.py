"""Trainability right after pruning: input-output Jacobian singular values and the batch loss."""

from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.executors import make_executor
from prunebench.metrics.trainability import jacobian_singular_values, trainability
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.store import ResultsDB


def linear_network() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Linear(7, 5), nn.Linear(5, 4))


@pytest.mark.parametrize("exact", [True, False])
def test_a_linear_networks_jacobian_singular_values_are_the_svd_of_its_weight_product(exact: bool) -> None:
    model = linear_network()
    x = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(0))
    state = torch.random.get_rng_state()
    values, method = jacobian_singular_values(model, x, **({} if exact else {"max_exact": 0, "rank": 4}))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left as found
    assert method == ("exact" if exact else "randomized-svd-k4")
    product = model[3].weight @ model[2].weight @ model[1].weight
    expected = torch.linalg.svdvals(product).detach()
    assert values.shape == (6 * 4,)
    for example in values.view(6, 4):  # the Jacobian of a linear map is the same at every input
        torch.testing.assert_close(example, expected, rtol=1e-4, atol=1e-6)
    metrics = trainability(model, x, torch.zeros(6, dtype=torch.long))
    assert metrics.jsv_mean == pytest.approx(float(expected.mean()), rel=1e-4)
    assert metrics.jsv_std == pytest.approx(float(expected.std(unbiased=False)), rel=1e-3)
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(model(x), torch.zeros(6, dtype=torch.long)))
    assert metrics.batch_loss == pytest.approx(loss)


def test_a_relu_networks_jacobian_matches_autograd_per_example() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(4, 8)
    values, _ = jacobian_singular_values(model, x)
    for i, example in enumerate(x):
        jacobian = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0)).squeeze(0), example)
        torch.testing.assert_close(values.view(4, 3)[i], torch.linalg.svdvals(jacobian), rtol=1e-4, atol=1e-6)
    assert model.training  # the mode is restored


def test_pruning_harder_lowers_the_recorded_mean_jsv(tmp_path: Path) -> None:
    config = {"dataset": "synthetic", "model": "mlp", "threads": 1, "baselines": False,
              "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64},
              "sweep": {"prune.compression": [2, 24]}}
    run_plan(plan_from_mapping(config), tmp_path, make_executor("serial"), live=False)
    results = {r["result"].target.value: r["result"] for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"}
    light, heavy = results[2.0].trainability, results[24.0].trainability
    assert light is not None and heavy is not None and light.method == heavy.method == "exact"
    assert heavy.jsv_mean < light.jsv_mean and heavy.batch_loss > light.batch_loss and light.examples == 32
