"""Pruning: scores -> selection -> mask, and keeping masked weights at zero.

``prunebench.pruning.prune`` ties them together for one set of pruning settings.
"""

from prunebench.pruning.mask import Mask
from prunebench.pruning.masking import KeepPruned
from prunebench.pruning.prunable import PrunablePolicy, classifier_name, prunable_parameters
from prunebench.pruning.scores import STRATEGIES, NoOptions, ScoreInputs, register_scorer
from prunebench.pruning.select import keep_count_for_compression, select

__all__ = [
    "STRATEGIES", "KeepPruned", "Mask", "NoOptions", "PrunablePolicy", "ScoreInputs",
    "classifier_name", "keep_count_for_compression", "prunable_parameters", "register_scorer",
    "select",
]
