"""Trainability right after pruning: input-output Jacobian singular values and the batch loss."""

from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.executors import make_executor
from prunebench.metrics.trainability import exact_singular_values, jacobian_singular_values, trainability
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.record import Trainability
from prunebench.report.plots import jsv_name
from prunebench.store import ResultsDB


def test_a_sketched_mean_written_under_jsv_mean_loads_under_its_own_name() -> None:
    old = {"jsv_mean": 0.8, "jsv_std": 0.1, "method": "randomized-svd-k32", "batch_loss": 2.0, "examples": 32}
    record = Trainability.model_validate(old)
    assert (record.jsv_mean, record.jsv_std) == (None, None)
    assert (record.jsv_top32_mean_approx, record.jsv_top32_std_approx) == (0.8, 0.1)
    exact = Trainability.model_validate({**old, "method": "exact"})
    assert (exact.jsv_mean, exact.jsv_top32_mean_approx) == (0.8, None)
    # the report's axis names the quantity it plots
    assert "jsv_top32_mean_approx" in jsv_name({record.method}) and "jsv_mean)" not in jsv_name({record.method})
    assert "(jsv_mean)" in jsv_name({"exact"}) and "approx" not in jsv_name({"exact"})


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
    metrics = trainability(model, x, torch.zeros(6, dtype=torch.long), **({} if exact else {"max_exact": 0}))
    assert metrics is not None and metrics.method == ("exact" if exact else "randomized-svd-k4")
    # the exact mean and the sketch's top-K mean are different quantities under different names
    mean, std = (metrics.jsv_mean, metrics.jsv_std) if exact else (metrics.jsv_top32_mean_approx, metrics.jsv_top32_std_approx)
    unset = (metrics.jsv_top32_mean_approx, metrics.jsv_top32_std_approx) if exact else (metrics.jsv_mean, metrics.jsv_std)
    assert unset == (None, None)
    assert mean == pytest.approx(float(expected.mean()), rel=1e-4)
    assert std == pytest.approx(float(expected.std(unbiased=False)), rel=1e-3)
    record = Trainability.of(metrics)
    assert record.mean == ("jsv_mean" if exact else "jsv_top32_mean_approx", mean)
    assert Trainability.model_validate(record.model_dump(mode="json")) == record  # result.json round trip
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


def test_the_sketch_without_oversampling_comes_out_below_the_exact_top_k() -> None:
    """Why the sketch has its own name: with more classes than K it is not the exact top K."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 100))
    x = torch.randn(4, 300)
    approx, method = jacobian_singular_values(model, x, max_exact=0)
    exact_top = exact_singular_values(model, x).topk(32, dim=1).values
    assert method == "randomized-svd-k32"
    assert 0.5 * exact_top.mean() < approx.mean() < exact_top.mean()


def test_pruning_harder_lowers_the_recorded_mean_jsv(tmp_path: Path) -> None:
    config = {"dataset": "synthetic", "model": "mlp", "threads": 1, "baselines": False,
              "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64},
              "sweep": {"prune.compression": [2, 24]}}
    run_plan(plan_from_mapping(config), tmp_path, make_executor("serial"), live=False)
    results = {r["result"].target.value: r["result"] for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"}
    light, heavy = results[2.0].trainability, results[24.0].trainability
    assert light is not None and heavy is not None and light.method == heavy.method == "exact"
    assert heavy.jsv_mean < light.jsv_mean and heavy.batch_loss > light.batch_loss and light.examples == 32
