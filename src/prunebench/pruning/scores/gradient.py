"""Gradient-times-weight scores (ShrinkBench's GlobalMagGrad / LayerMagGrad)."""

from __future__ import annotations

import torch

from prunebench.pruning.scores.base import NoOptions, ScoreInputs, Scores, eval_mode, register_scorer


def accumulated_gradients(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """Sum of dL/dw over ``inputs.batches`` (mean loss per batch), without touching ``.grad``.

    The model is put in eval mode while scoring so that batch-norm running statistics are not
    changed by a scorer; its mode is restored afterwards.
    """
    if not inputs.batches:
        raise ValueError("gradient-based scoring needs at least one training batch")
    names = list(inputs.params)
    params = [inputs.params[n] for n in names]
    totals = [torch.zeros_like(p) for p in params]
    with eval_mode(inputs.model):
        for x, y in inputs.batches:
            loss = inputs.loss_fn(inputs.model(x), y)
            for total, grad in zip(totals, torch.autograd.grad(loss, params)):
                total.add_(grad)
    return dict(zip(names, totals))


@register_scorer("grad_magnitude")
def grad_magnitude(inputs: ScoreInputs, options: NoOptions) -> Scores:
    """|w * dL/dw|, gradients accumulated over ``prune.score_batches`` training batches."""
    grads = accumulated_gradients(inputs)
    return {name: (p.detach() * grads[name]).abs() for name, p in inputs.params.items()}
