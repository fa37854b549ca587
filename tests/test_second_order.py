"""Optimal Brain Damage and Optimal Brain Surgeon against hand and finite-difference computations."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunebench.spec import PruneSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.pruning import STRATEGIES, PrunablePolicy, ScoreInputs
from prunebench.pruning.prune import prune_model, scoring_batches
from prunebench.pruning.scores.second_order import fisher_diagonal, hutchinson_diagonal


def tiny_net() -> nn.Module:
    """Smooth (tanh) and small: 8 parameters, so every one of the 2^8 sign vectors can be used."""
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(1, 2), nn.Tanh(), nn.Linear(2, 2, bias=False)).double()


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    return torch.randn(7, 1, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0, 0])


def inputs_for(model: nn.Module, batches, seed: int = 0) -> ScoreInputs:  # type: ignore[no-untyped-def]
    return ScoreInputs(model, dict(model.named_parameters()), batches, F.cross_entropy, torch.Generator().manual_seed(seed))


def finite_difference_diagonal(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """h_ii = (g_i(w + eps e_i) - g_i(w - eps e_i)) / (2 eps), one weight at a time."""
    params = dict(model.named_parameters())
    x, y = batch

    def gradient(name: str) -> torch.Tensor:
        return torch.autograd.grad(F.cross_entropy(model(x), y), [params[name]])[0]

    diagonal = {}
    for name, p in params.items():
        h = torch.zeros_like(p)
        for index in itertools.product(*map(range, p.shape)):
            with torch.no_grad():
                p[index] += eps
            plus = gradient(name)[index]
            with torch.no_grad():
                p[index] -= 2 * eps
            minus = gradient(name)[index]
            with torch.no_grad():
                p[index] += eps
            h[index] = (plus - minus) / (2 * eps)
        diagonal[name] = h
    return diagonal


def every_sign_vector(params: dict[str, nn.Parameter]) -> list[dict[str, torch.Tensor]]:
    """All 2^n vectors of +-1: their mean of z z^T is exactly the identity."""
    sizes = [p.numel() for p in params.values()]
    vectors = []
    for signs in itertools.product((-1.0, 1.0), repeat=sum(sizes)):
        flat = torch.tensor(signs, dtype=torch.float64)
        vectors.append({n: chunk.view(p.shape) for (n, p), chunk in zip(params.items(), flat.split(sizes))})
    return vectors


def test_hutchinson_over_every_sign_vector_is_the_exact_hessian_diagonal() -> None:
    model, batch = tiny_net(), tiny_batch()
    params = dict(model.named_parameters())
    exact = hutchinson_diagonal(model, params, [batch], F.cross_entropy, [every_sign_vector(params)])
    expected = finite_difference_diagonal(model, batch)
    for name in params:
        torch.testing.assert_close(exact[name], expected[name], rtol=1e-5, atol=1e-8)
    assert any(bool((h != 0).any()) for h in expected.values())


def test_obd_hutchinson_scores_approach_half_the_exact_diagonal_times_w_squared() -> None:
    model, batch = tiny_net(), tiny_batch()
    expected = finite_difference_diagonal(model, batch)
    options = STRATEGIES.get("obd").parse_options({"estimator": "hutchinson", "probes": 1000})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scores = STRATEGIES.get("obd")(inputs_for(model, [batch]), options)
    assert model.training and all(p.grad is None and torch.equal(p, before[n]) for n, p in model.named_parameters())
    largest = max(float(h.abs().max()) for h in expected.values())
    for name, p in model.named_parameters():  # a random estimate: its error shrinks as 1 / sqrt(probes)
        torch.testing.assert_close(scores[name] / (0.5 * p.detach() ** 2), expected[name], rtol=0, atol=0.2 * largest)


def test_obd_fisher_is_the_mean_squared_per_example_gradient() -> None:
    model, batch = tiny_net(), tiny_batch()
    params = dict(model.named_parameters())
    x, y = batch
    halves = [(x[:4], y[:4]), (x[4:], y[4:])]  # the mean runs over examples, not over batches
    by_hand = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), list(params.values()))
        for (n, _), g in zip(params.items(), grads):
            by_hand[n] += g**2 / x.shape[0]
    fisher = fisher_diagonal(model, params, halves, F.cross_entropy)
    scores = STRATEGIES.get("obd")(inputs_for(model, halves))  # the default estimator
    for n, p in params.items():
        torch.testing.assert_close(fisher[n], by_hand[n])
        torch.testing.assert_close(scores[n], 0.5 * by_hand[n] * p.detach() ** 2)


def test_obd_names_its_estimator_and_refuses_unknown_ones() -> None:
    strategy = STRATEGIES.get("obd")
    assert strategy.parse_options({}).estimator == "fisher"
    try:
        strategy.parse_options({"estimator": "exact"})
    except Exception as exc:  # noqa: BLE001
        assert "prune.options.estimator" in str(exc)
    else:
        raise AssertionError("an unknown estimator was accepted")


# --- obs ------------------------------------------------------------------------------------


def obs_inputs(model: nn.Module, x: torch.Tensor, params: tuple[str, ...] = ("weight",)) -> ScoreInputs:
    named = dict(model.named_parameters())
    return ScoreInputs(model, {n: named[n] for n in params}, [(x, torch.zeros(x.shape[0], dtype=torch.long))],
                       F.cross_entropy, torch.Generator().manual_seed(0))


def test_obs_scores_are_w_squared_over_twice_the_dampened_inverse_hessian_diagonal() -> None:
    torch.manual_seed(6)
    layer = nn.Linear(5, 3).double()
    x = torch.randn(40, 5, dtype=torch.float64) @ torch.randn(5, 5, dtype=torch.float64)  # correlated inputs
    h = 2 / 40 * x.T @ x
    h_inv = torch.linalg.inv(h + 0.01 * torch.diagonal(h).mean() * torch.eye(5, dtype=torch.float64))
    scores = STRATEGIES.get("obs")(obs_inputs(layer, x, ("weight", "bias")))
    w = layer.weight.detach()
    torch.testing.assert_close(scores["weight"], w**2 / (2 * torch.diagonal(h_inv)), rtol=1e-5, atol=0)
    torch.testing.assert_close(scores["bias"], layer.bias.detach() ** 2)  # a constant input of 1, on its own


def least_squares_survivors(output_of, weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The kept weights that best reproduce the dense outputs, solved on the layer's outputs for
    each unit weight (the outputs are linear in the weights), independently of unfolded inputs."""
    dense = output_of(weight).detach()
    basis = torch.eye(weight.numel(), dtype=weight.dtype).view(-1, *weight.shape)
    columns = torch.stack([output_of(unit) for unit in basis], dim=-1)  # output dims + (weights,)
    best = torch.zeros_like(weight)
    for row in range(weight.shape[0]):  # each output channel depends on its own row only
        own = slice(row * weight[row].numel(), (row + 1) * weight[row].numel())
        j = columns.movedim(1, 0)[row].reshape(-1, weight.numel())[:, own][:, keep[row].flatten()]
        target = dense.movedim(1, 0)[row].reshape(-1, 1)
        best[row].view(-1)[keep[row].flatten()] = torch.linalg.lstsq(j, target).solution.flatten()
    return best


def random_keep(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.5


def check_update_is_the_least_squares_optimum(layer: nn.Module, x: torch.Tensor, output_of) -> None:  # type: ignore[no-untyped-def]
    dense = layer.weight.detach().clone()
    keep = random_keep(tuple(dense.shape), 7)
    inputs = obs_inputs(layer, x)
    strategy = STRATEGIES.get("obs")
    with torch.no_grad():
        strategy.update(inputs, {"weight": keep}, strategy.parse_options({"percdamp": 0.0}))
    updated = layer.weight.detach().clone()
    assert bool((updated[~keep] == 0).all())  # OBS's own constraint: pruned entries exactly zero
    torch.testing.assert_close(updated, least_squares_survivors(output_of, dense, keep), rtol=1e-4, atol=1e-6)  # H in float32
    target = output_of(dense)
    compensated = (output_of(updated) - target).square().sum()
    plain = (output_of(dense * keep) - target).square().sum()
    assert compensated < plain


def test_obs_update_of_a_linear_is_its_least_squares_reconstruction() -> None:
    torch.manual_seed(8)
    layer = nn.Linear(6, 4, bias=False).double()
    x = torch.randn(30, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)  # correlated inputs
    check_update_is_the_least_squares_optimum(layer, x, lambda w: x @ w.T)


def test_obs_update_of_a_grouped_convolution_works_through_its_unfolded_inputs() -> None:
    torch.manual_seed(9)
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2, groups=2, bias=False).double()
    x = torch.randn(5, 4, 7, 7, dtype=torch.float64)
    check_update_is_the_least_squares_optimum(conv, x, lambda w: F.conv2d(x, w, padding=1, stride=2, groups=2))


def test_pruning_with_obs_compensates_the_layer_it_prunes(synthetic: DataSplits) -> None:
    """Through the pruning step: the survivors move, and the layer reproduces its dense outputs on
    the scoring batches better than the same mask without the update."""
    torch.manual_seed(10)
    dense = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model = copy.deepcopy(dense)
    spec = PruneSpec(strategy="obs", compression=3.0, score_batches=2, batch_size=32,
                     prunable=PrunablePolicy(exclude_classifier=False))
    mask = prune_model(model, synthetic, spec, seed=0)
    x = torch.cat([b[0] for b in scoring_batches(synthetic, 32, 2, 0)])
    plain = copy.deepcopy(dense)
    mask.apply(plain)
    keep = mask["1.weight"]
    assert not torch.equal(model[1].weight[keep], dense[1].weight[keep])  # the survivors moved
    with torch.no_grad():
        target = dense(x)
        assert (model(x) - target).square().sum() < 0.9 * (plain(x) - target).square().sum()


def test_obs_without_dampening_on_collinear_inputs_is_a_config_error() -> None:
    layer = nn.Linear(3, 2)
    x = torch.randn(20, 1).repeat(1, 3)  # three copies of one input: X X^T has rank 1
    strategy = STRATEGIES.get("obs")
    with pytest.raises(ConfigError, match=r"^prune.options.percdamp: 0.0 leaves the Hessian of .* singular"):
        strategy(obs_inputs(layer, x), strategy.parse_options({"percdamp": 0.0}))


def test_obs_prunes_a_language_model_linear_with_the_same_saliency_and_update_as_a_classifier_layer() -> None:
    """One method for both model kinds: the layer form, fed the driver's calibration Hessian of a
    Linear's inputs, scores and compensates exactly as the classifier form does for that layer."""
    from prunebench.pruning.obs import add_to_hessian
    from prunebench.pruning.scores import LayerStatistics

    torch.manual_seed(11)
    layer = nn.Linear(6, 4, bias=False)
    x = torch.randn(30, 6) @ torch.randn(6, 6)  # correlated inputs
    obs = STRATEGIES.get("obs")
    assert obs.layer is not None and obs.layer.score is not None and obs.layer.update is not None
    options = obs.parse_options({})
    hessian, tokens = add_to_hessian(None, x, 0)
    stats = LayerStatistics(tokens=tokens, hessian=hessian)
    scores = obs.layer.score(layer.weight, stats, options, torch.Generator())
    torch.testing.assert_close(scores, obs(obs_inputs(layer, x), options)["weight"])
    keep = random_keep((4, 6), 3)
    updated = obs.layer.update(layer.weight, stats, keep, options)
    with torch.no_grad():
        obs.update(obs_inputs(layer, x), {"weight": keep}, options)
    torch.testing.assert_close(updated, layer.weight.detach())
    assert bool((updated[~keep] == 0).all())
