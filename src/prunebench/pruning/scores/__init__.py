"""Registered pruning strategies (scorers). Add one with ``@register_scorer("name")``."""

from prunebench.pruning.scores import (  # noqa: F401
    activation, gradient, grasp, magnitude, random, second_order, snip, sparsegpt, synflow, wanda,
)
from prunebench.pruning.scores.base import (
    STRATEGIES,
    WEIGHT_STRATEGIES,
    WEIGHT_STRUCTURES,
    Batch,
    LayerPruner,
    LayerStatistics,
    LayerTarget,
    NoOptions,
    ScoreInputs,
    Scores,
    Strategy,
    StrategyView,
    register_lm_strategy,
    register_scorer,
)

__all__ = [
    "STRATEGIES", "WEIGHT_STRATEGIES", "WEIGHT_STRUCTURES", "Batch", "LayerPruner", "LayerStatistics", "LayerTarget",
    "NoOptions", "ScoreInputs", "Scores", "Strategy", "StrategyView", "register_lm_strategy", "register_scorer",
]
