"""Weight magnitude times input activation (ShrinkBench's activation-based strategies)."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.pruning.scores.base import NoOptions, ScoreInputs, Scores, eval_mode, module_of, register_scorer


def mean_abs_input(model: nn.Module, modules: dict[str, nn.Module], batches) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Mean |input| per input channel of each module, over every example of ``batches``."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = args[0].detach().abs()
            # channels are dim -1 for Linear, dim 1 for convolutions
            reduce = [d for d in range(x.dim()) if d != (x.dim() - 1 if isinstance(module, nn.Linear) else 1)]
            sums[name] = sums.get(name, 0) + x.sum(dim=reduce)
            counts[name] = counts.get(name, 0) + x.numel() // x.shape[-1 if isinstance(module, nn.Linear) else 1]

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    try:
        with torch.no_grad(), eval_mode(model):
            for x, _ in batches:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: sums[name] / counts[name] for name in sums}


def broadcast_to_weight(module: nn.Module, activation: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Align per-input-channel activations with the weight's input dimension (groups too)."""
    if isinstance(module, nn.Linear):
        return activation.view(1, -1)
    groups = getattr(module, "groups", 1)
    out_channels, in_per_group = weight.shape[:2]
    per_group = activation.view(groups, in_per_group)
    per_out = per_group.repeat_interleave(out_channels // groups, dim=0)  # (out, in/groups)
    return per_out.view(out_channels, in_per_group, *([1] * (weight.dim() - 2)))


@register_scorer("act_magnitude")
def act_magnitude(inputs: ScoreInputs, options: NoOptions) -> Scores:
    """|w| times the mean |input activation| of the weight's input channel.

    Parameters that are not the weight of a Linear or convolution (biases, when included)
    fall back to |w|.
    """
    if not inputs.batches:
        raise ValueError("act_magnitude needs at least one training batch")
    owners = {name: module_of(inputs.model, name) for name in inputs.params}
    weighted = {
        name.rpartition(".")[0]: module
        for name, (module, attr) in owners.items()
        if attr == "weight" and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))
    }
    activations = mean_abs_input(inputs.model, weighted, inputs.batches)
    scores: Scores = {}
    for name, p in inputs.params.items():
        module, attr = owners[name]
        key = name.rpartition(".")[0]
        magnitude = p.detach().abs()
        if attr == "weight" and key in activations:
            magnitude = magnitude * broadcast_to_weight(module, activations[key], p)
        scores[name] = magnitude
    return scores
