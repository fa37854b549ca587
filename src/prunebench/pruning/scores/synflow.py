"""SynFlow: iterative synaptic flow pruning, data-free (Tanaka, Kunin, Yamins & Ganguli 2020,
"Pruning neural networks without any data by iteratively conserving synaptic flow", NeurIPS)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from prunebench.pruning.scores.base import ScoreInputs, Scores, register_scorer


@dataclass(frozen=True)
class SynflowOptions:
    """The paper's default: 100 pruning rounds on an exponential schedule."""

    rounds: Annotated[int, Field(ge=1)] = 100


def synaptic_flow(model: nn.Module, params: dict[str, nn.Parameter], input_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """dR/dw * w with R = 1^T (prod_l |W_l|) 1: every parameter replaced by its absolute value,
    an all-ones input, the outputs summed. ``model`` must be a disposable copy in eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ones = torch.ones((1, *input_shape), dtype=next(model.parameters()).dtype, device=next(model.parameters()).device)
    flow = model(ones).sum()
    grads = torch.autograd.grad(flow, list(params.values()))
    return {name: (g * p).detach() for (name, p), g in zip(params.items(), grads)}


def synflow_rounds(options: SynflowOptions) -> int:
    return options.rounds


@register_scorer("synflow", SynflowOptions, rounds=synflow_rounds, rank=torch.log, needs="nothing")
def synflow(inputs: ScoreInputs, options: SynflowOptions) -> Scores:
    """Tanaka et al. 2020: the synaptic flow |dR/dw * w| of each weight, data-free, iterated.

    One call is one round: the flow of ``inputs.model`` as it is, in float64 on a copy
    (products over many layers overflow float32). The selection layer drives the
    ``options.rounds`` rounds (:mod:`prunebench.pruning.rounds`): round k keeps
    n * (keep / n) ** (k / rounds) entries, ranked by the log of the flow, and rescores the
    masked model. Only the input shape of the first batch is read.
    """
    if not inputs.batches:
        raise ValueError("synflow needs one batch to know the input shape (its values are not used)")
    input_shape = tuple(inputs.batches[0][0].shape[1:])
    copy_model = copy.deepcopy(inputs.model).double().eval()
    copy_params = dict(copy_model.named_parameters())
    flow = synaptic_flow(copy_model, {name: copy_params[name] for name in inputs.params}, input_shape)
    return {name: flow[name].to(inputs.params[name].device) for name in inputs.params}
