"""SynFlow: iterative synaptic flow pruning, data-free (Tanaka, Kunin, Yamins & Ganguli 2020,
"Pruning neural networks without any data by iteratively conserving synaptic flow", NeurIPS)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from prunebench.pruning.mask import Mask
from prunebench.pruning.scores.base import ScoreInputs, Scores, register_scorer
from prunebench.pruning.select import select


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


@register_scorer("synflow", SynflowOptions)
def synflow(inputs: ScoreInputs, options: SynflowOptions) -> Scores:
    """Scores from ``rounds`` rounds: round k keeps n * (keep / n) ** (k / rounds) entries.

    Data-free: only the input shape of the first batch is read. The flow is computed in float64
    on a copy of the model (products over many layers overflow float32). Entries pruned in an
    earlier internal round score below every survivor, earlier rounds lower, so any selection of
    ``inputs.keep`` entries returns SynFlow's mask. Without ``inputs.keep`` (a caller outside
    prunebench's pruning step) one round is computed: the single-shot synaptic flow.
    """
    if not inputs.batches:
        raise ValueError("synflow needs one batch to know the input shape (its values are not used)")
    input_shape = tuple(inputs.batches[0][0].shape[1:])
    names = list(inputs.params)
    copy_model = copy.deepcopy(inputs.model).double().eval()
    copy_params = dict(copy_model.named_parameters())
    params = {name: copy_params[name] for name in names}
    originals = {name: p.detach().clone() for name, p in copy_model.named_parameters()}
    total = sum(p.numel() for p in params.values())
    keep = inputs.keep
    rounds = options.rounds if keep is not None and keep < total else 1
    mask = Mask.ones(params)
    pruned_in: dict[str, torch.Tensor] = {name: torch.zeros_like(p) for name, p in params.items()}
    scores: dict[str, torch.Tensor] = {}
    for k in range(1, rounds + 1):
        with torch.no_grad():  # restore the signed weights, masked by this round's survivors
            for name, p in copy_model.named_parameters():
                p.copy_(originals[name])
            for name in names:
                params[name].mul_(mask[name].to(params[name].dtype))
        scores = synaptic_flow(copy_model, params, input_shape)
        if rounds == 1:
            break
        target = round(total * (keep / total) ** (k / rounds))  # type: ignore[operator]
        # ranked in log space: flows span far more than float32's range, and select uses float32
        new_mask = select({n: s.log() for n, s in scores.items()}, target, "global", mask)
        for name in names:
            newly = mask[name] & ~new_mask[name]
            pruned_in[name][newly] = k
        mask = new_mask
    largest = max(float(s.max()) for s in scores.values()) or 1.0
    if rounds == 1:  # divided by the largest flow: a common positive factor changes no ranking
        return {name: (scores[name] / largest).float().to(inputs.params[name].device) for name in names}
    # pruned entries score the round they left in (1..rounds); survivors rounds + 1 + flow share
    result = {}
    for name in names:
        ranked = torch.where(mask[name], rounds + 1 + scores[name] / largest, pruned_in[name])
        result[name] = ranked.float().to(inputs.params[name].device)
    return result
