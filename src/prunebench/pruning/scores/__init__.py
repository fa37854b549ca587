"""Registered pruning methods. Add a weight strategy with ``@register_scorer("name")``."""

from prunebench.pruning.scores import (  # noqa: F401
    activation, depth, gradient, grasp, magnitude, random, second_order, snip, sparsegpt, synflow, wanda, width,
)
from prunebench.pruning.scores import dsnot, ria  # noqa: F401,E402  (after the methods DSnoT refines)
from prunebench.pruning.scores.base import (
    CLASSIFIER,
    LANGUAGE_MODEL,
    MODEL_KINDS,
    STRATEGIES,
    WEIGHT_STRATEGIES,
    Batch,
    Form,
    LayerPruner,
    LayerStatistics,
    LayerTarget,
    Method,
    ModelKind,
    NoOptions,
    ScoreInputs,
    Scores,
    Strategy,
    StrategyView,
    register_method,
    register_scorer,
)

__all__ = [
    "CLASSIFIER", "LANGUAGE_MODEL", "MODEL_KINDS", "STRATEGIES", "WEIGHT_STRATEGIES", "Batch",
    "Form", "LayerPruner", "LayerStatistics", "LayerTarget", "Method", "ModelKind", "NoOptions", "ScoreInputs",
    "Scores", "Strategy", "StrategyView", "register_method", "register_scorer",
]
