"""Registered pruning strategies (scorers). Add one with ``@register_scorer("name")``."""

from prunebench.pruning.scores import activation, gradient, grasp, magnitude, random, second_order, snip, synflow  # noqa: F401
from prunebench.pruning.scores.base import (
    STRATEGIES,
    WEIGHT_STRATEGIES,
    WEIGHT_STRUCTURES,
    Batch,
    NoOptions,
    ScoreInputs,
    Scores,
    Strategy,
    StrategyView,
    register_scorer,
)

__all__ = [
    "STRATEGIES", "WEIGHT_STRATEGIES", "WEIGHT_STRUCTURES", "Batch", "NoOptions", "ScoreInputs", "Scores",
    "Strategy", "StrategyView", "register_scorer",
]
