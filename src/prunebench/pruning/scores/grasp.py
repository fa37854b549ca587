"""GraSP: gradient signal preservation at initialization (Wang, Zhang & Grosse 2020,
"Picking Winning Tickets Before Training by Preserving Gradient Flow", ICLR)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from prunebench.pruning.scores.base import Batch, ScoreInputs, Scores, eval_mode, register_scorer


@dataclass(frozen=True)
class GraspOptions:
    """Defaults of the paper's released code: logits divided by T = 200, and a class-balanced
    sample of 25 training examples per class drawn from the scoring batches (fewer if the
    batches hold fewer)."""

    temperature: Annotated[float, Field(gt=0)] = 200.0
    samples_per_class: Annotated[int, Field(ge=1)] = 25


def balanced_sample(batches: Sequence[Batch], per_class: int) -> Batch:
    """The first ``per_class`` examples of every class found in ``batches``, in order."""
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    chosen = torch.cat([torch.nonzero(y == c).squeeze(1)[:per_class] for c in torch.unique(y)])
    chosen = chosen.sort().values
    return x[chosen], y[chosen]


def hessian_gradient_product(
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    batch: Batch,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    temperature: float = 1.0,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(g, H g) of the loss on ``batch`` with logits / ``temperature``, by double backward.

    H g = d/dw (g_fixed . dL/dw): one extra backward pass, never the Hessian itself.
    """
    names = list(params)
    weights = [params[n] for n in names]
    x, y = batch
    gradient = torch.autograd.grad(loss_fn(model(x) / temperature, y), weights)
    gradient = [g.detach() for g in gradient]
    with_graph = torch.autograd.grad(loss_fn(model(x) / temperature, y), weights, create_graph=True)
    dot = sum((g * h).sum() for g, h in zip(gradient, with_graph))
    hg = torch.autograd.grad(dot, weights)
    return dict(zip(names, gradient)), {n: h.detach() for n, h in zip(names, hg)}


@register_scorer("grasp", GraspOptions)
def grasp(inputs: ScoreInputs, options: GraspOptions) -> Scores:
    """w * (H g): the negative of GraSP's S(-w) = -w * (H g).

    GraSP removes the weights with the largest S(-w) (their removal reduces gradient flow the
    least); prunebench prunes the lowest scores, so the scorer returns -S(-w).
    """
    if not inputs.batches:
        raise ValueError("grasp needs at least one training batch")
    batch = balanced_sample(inputs.batches, options.samples_per_class)
    with eval_mode(inputs.model):  # batch-norm statistics must not move while scoring
        _, hg = hessian_gradient_product(inputs.model, inputs.params, batch, inputs.loss_fn, options.temperature)
    return {name: p.detach() * hg[name] for name, p in inputs.params.items()}
