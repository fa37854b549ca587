"""Random scores: the control every comparison needs (ShrinkBench's RandomPruning)."""

from __future__ import annotations

import torch

from prunebench.pruning.scores.base import LayerPruner, LayerStatistics, NoOptions, ScoreInputs, Scores, register_scorer


def random_for_layer(weight: torch.Tensor, stats: LayerStatistics, options: NoOptions, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(weight.shape, generator=generator).to(weight.device)


RANDOM_LM = LayerPruner("uniform scores from the run's generator", "none", ("row", "layer", "global"),
                        score=random_for_layer)


# One method for both model kinds (the control of each), data-free.
@register_scorer("random", layer=RANDOM_LM, needs="nothing")
def random(inputs: ScoreInputs, options: NoOptions) -> Scores:
    """Uniform scores from the run's generator, so the same seed prunes the same weights."""
    return {
        name: torch.rand(p.shape, generator=inputs.generator).to(p.device)
        for name, p in inputs.params.items()
    }
