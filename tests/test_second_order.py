"""Optimal Brain Damage and Optimal Brain Surgeon against hand and finite-difference computations."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.pruning import STRATEGIES, ScoreInputs
from prunebench.pruning.scores.second_order import fisher_diagonal, hutchinson_diagonal


def tiny_net() -> nn.Module:
    """Smooth (tanh) and small: 10 parameters, so every one of the 2^10 sign vectors can be used."""
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2, bias=False)).double()


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    return torch.randn(7, 2, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0, 0])


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
    options = STRATEGIES.get("obd").parse_options({"estimator": "hutchinson", "probes": 4000})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scores = STRATEGIES.get("obd")(inputs_for(model, [batch]), options)
    assert model.training and all(p.grad is None and torch.equal(p, before[n]) for n, p in model.named_parameters())
    largest = max(float(h.abs().max()) for h in expected.values())
    for name, p in model.named_parameters():  # a random estimate: its error shrinks as 1 / sqrt(probes)
        torch.testing.assert_close(scores[name] / (0.5 * p.detach() ** 2), expected[name], rtol=0, atol=0.1 * largest)


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
