"""Registered pruning strategies (scorers). Add one with ``@register_scorer("name")``."""

from prunebench.pruning.scores import activation, gradient, grasp, magnitude, random, snip, sparsegpt, synflow, wanda  # noqa: F401
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
