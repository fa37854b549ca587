"""SNIP: connection sensitivity at initialization (Lee et al. 2019, "SNIP: Single-shot Network
Pruning based on Connection Sensitivity", ICLR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from prunebench.pruning.scores.base import ScoreInputs, Scores, register_scorer
from prunebench.pruning.scores.gradient import accumulated_gradients


@dataclass(frozen=True)
class SnipOptions:
    """The paper's default: one mini-batch of training data (batch 100 on MNIST, 128 on CIFAR).

    ``batches`` caps how many of ``prune.score_batches`` are used; the batch size itself is
    ``prune.batch_size``.
    """

    batches: Annotated[int, Field(ge=1)] = 1


@register_scorer("snip", SnipOptions)
def snip(inputs: ScoreInputs, options: SnipOptions) -> Scores:
    """|g * w| with g = dL/dw on ``options.batches`` batch(es), usually at initialization.

    The paper normalizes by the sum over all weights; a positive common factor changes no
    ranking, so the scores are left unnormalized.
    """
    used = ScoreInputs(
        model=inputs.model, params=inputs.params, batches=list(inputs.batches)[: options.batches],
        loss_fn=inputs.loss_fn, generator=inputs.generator,
    )
    grads = accumulated_gradients(used)
    return {name: (p.detach() * grads[name]).abs() for name, p in inputs.params.items()}
