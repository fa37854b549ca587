"""Registered pruning strategies (scorers). Add one with ``@register_scorer("name")``."""

from prunebench.pruning.scores import activation, gradient, grasp, magnitude, random, snip, synflow  # noqa: F401
from prunebench.pruning.scores.base import (
    STRATEGIES,
    Batch,
    NoOptions,
    ScoreInputs,
    Scores,
    Strategy,
    register_scorer,
)

__all__ = ["STRATEGIES", "Batch", "NoOptions", "ScoreInputs", "Scores", "Strategy", "register_scorer"]
