"""Second-order saliencies: Optimal Brain Damage (LeCun, Denker & Solla 1989, "Optimal Brain
Damage", NIPS 2).

OBD models the loss change of deleting weight q by the second-order Taylor expansion at a trained
minimum (gradient term dropped) with a diagonal Hessian: s_q = 1/2 h_qq w_q^2. The diagonal is
estimated from the training batches ``prune.score_batches`` by the estimator named in
``prune.options.estimator``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call, grad, vmap

from prunebench.pruning.scores.base import Batch, ScoreInputs, Scores, eval_mode, register_scorer

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Per-example gradients are computed this many floats at a time (chunk of examples x parameters),
# so a large model does not hold one gradient copy per example of a batch at once.
PER_EXAMPLE_FLOATS = 1 << 25


@dataclass(frozen=True)
class ObdOptions:
    """How the Hessian diagonal is estimated.

    - ``fisher`` (default): the empirical Fisher diagonal (1/N) sum_n (dl_n/dw)^2 over every
      example of the scoring batches. LeCun et al. compute h_qq by back-propagating second
      derivatives with the Levenberg-Marquardt (Gauss-Newton) approximation, which drops the
      second derivatives of the non-linearities and so keeps every h_qq >= 0; the Fisher is the
      same kind of positive curvature (for softmax cross-entropy the Gauss-Newton matrix is the
      Fisher, which the empirical Fisher estimates from the data's labels), costs one
      per-example gradient pass, and is the estimate later OBD/OBS pruning work uses (Theis et
      al. 2018 "Faster gaze prediction with dense networks and Fisher pruning"; Singh & Alistarh
      2020 "WoodFisher").
    - ``hutchinson``: the exact Hessian diagonal estimated as E[z * Hz] with Rademacher z
      (Bekas, Kokiopoulou & Saad 2007), ``probes`` vectors per scoring batch, Hz by double
      backward. Unbiased but noisy; where the loss curves downwards along a weight, h_qq and so
      the saliency can be negative (such weights are pruned first: the quadratic model says
      removing them lowers the loss).
    """

    estimator: Literal["fisher", "hutchinson"] = "fisher"
    probes: Annotated[int, Field(ge=1)] = 8  # hutchinson only: Rademacher vectors per batch


def fisher_diagonal(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Sequence[Batch], loss_fn: LossFn
) -> dict[str, torch.Tensor]:
    """(1/N) sum_n (dl_n/dw)^2 over every example n of ``batches`` (per-example gradients by vmap).

    ``loss_fn`` is applied to one example at a time (a batch of one), so a mean-reduced loss is
    that example's loss. Run it with the model in eval mode (batch norm on running statistics).
    """
    names = list(params)
    fixed = {n: t.detach() for n, t in (*model.named_parameters(), *model.named_buffers()) if n not in params}

    def example_loss(weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, {**fixed, **weights}, (x.unsqueeze(0),)), y.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    weights = {n: params[n].detach() for n in names}
    chunk = max(1, PER_EXAMPLE_FLOATS // max(1, sum(w.numel() for w in weights.values())))
    totals = {n: torch.zeros_like(w) for n, w in weights.items()}
    count = 0
    for x, y in batches:
        for start in range(0, x.shape[0], chunk):
            grads = per_example(weights, x[start : start + chunk], y[start : start + chunk])
            for n in names:
                totals[n].add_(grads[n].square().sum(0))
        count += x.shape[0]
    return {n: total / count for n, total in totals.items()}


def hessian_vector_product(
    model: nn.Module, params: Mapping[str, nn.Parameter], batch: Batch, loss_fn: LossFn,
    vectors: Sequence[dict[str, torch.Tensor]],
) -> list[dict[str, torch.Tensor]]:
    """H v for each of ``vectors``, H the Hessian of the mean loss on ``batch`` (double backward)."""
    names = list(params)
    weights = [params[n] for n in names]
    x, y = batch
    first = torch.autograd.grad(loss_fn(model(x), y), weights, create_graph=True)
    products = []
    for index, v in enumerate(vectors):
        dot = sum((g * v[n]).sum() for g, n in zip(first, names))
        hv = torch.autograd.grad(dot, weights, retain_graph=index < len(vectors) - 1)
        products.append({n: h.detach() for n, h in zip(names, hv)})
    return products


def rademacher(params: Mapping[str, nn.Parameter], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Independent +-1 entries, drawn on the CPU from ``generator`` (the same on every device)."""
    return {
        n: (torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(device=p.device, dtype=p.dtype)
        for n, p in params.items()
    }


def hutchinson_diagonal(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Sequence[Batch], loss_fn: LossFn,
    probes: Sequence[Sequence[dict[str, torch.Tensor]]],
) -> dict[str, torch.Tensor]:
    """mean over batches and their probe vectors z of z * (H_batch z): E[z * Hz] = diag H for
    Rademacher z. ``probes[i]`` are batch i's vectors; all 2^n sign vectors give diag H exactly."""
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for batch, vectors in zip(batches, probes, strict=True):
        for z, hz in zip(vectors, hessian_vector_product(model, params, batch, loss_fn, vectors)):
            for n in totals:
                totals[n].add_(z[n] * hz[n])
            count += 1
    return {n: total / count for n, total in totals.items()}


def hessian_diagonal(inputs: ScoreInputs, options: ObdOptions) -> dict[str, torch.Tensor]:
    """The estimate ``options.estimator`` names, on the model in eval mode (mode restored)."""
    if not inputs.batches:
        raise ValueError("obd needs at least one training batch")
    with eval_mode(inputs.model):
        if options.estimator == "fisher":
            return fisher_diagonal(inputs.model, inputs.params, inputs.batches, inputs.loss_fn)
        probes = [[rademacher(inputs.params, inputs.generator) for _ in range(options.probes)] for _ in inputs.batches]
        return hutchinson_diagonal(inputs.model, inputs.params, inputs.batches, inputs.loss_fn, probes)


@register_scorer("obd", ObdOptions)
def obd(inputs: ScoreInputs, options: ObdOptions) -> Scores:
    """LeCun et al. 1989, Optimal Brain Damage: 1/2 h_qq w_q^2 with the Hessian diagonal h estimated
    from the scoring batches (``estimator``: fisher, the default, or hutchinson)."""
    diagonal = hessian_diagonal(inputs, options)
    return {name: 0.5 * diagonal[name] * p.detach().square() for name, p in inputs.params.items()}
