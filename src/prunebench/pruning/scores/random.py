"""Random scores: the control every comparison needs (ShrinkBench's RandomPruning)."""

from __future__ import annotations

import torch

from prunebench.pruning.scores.base import NoOptions, ScoreInputs, Scores, register_scorer


@register_scorer("random")
def random(inputs: ScoreInputs, options: NoOptions) -> Scores:
    """Uniform scores from the run's generator, so the same seed prunes the same weights."""
    return {
        name: torch.rand(p.shape, generator=inputs.generator).to(p.device)
        for name, p in inputs.params.items()
    }
