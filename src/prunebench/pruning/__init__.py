"""Pruning: scores -> selection -> mask, and keeping masked weights at zero.

``prunebench.pruning.prune`` ties them together for one set of pruning settings.

The public names load on first use (:mod:`prunebench.lazy`): the spec imports
:mod:`prunebench.pruning.policy`, and that must not import torch through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.lazy import lazy_getattr

if TYPE_CHECKING:
    from prunebench.pruning.mask import Mask
    from prunebench.pruning.masking import KeepPruned
    from prunebench.pruning.prunable import PrunablePolicy, classifier_name, prunable_parameters
    from prunebench.pruning.scores import STRATEGIES, NoOptions, ScoreInputs, register_scorer
    from prunebench.pruning.selection import keep_count_for_compression, select

# Where each public name lives.
_EXPORTS = {
    "Mask": "prunebench.pruning.mask",
    "KeepPruned": "prunebench.pruning.masking",
    "PrunablePolicy": "prunebench.pruning.policy",
    "classifier_name": "prunebench.pruning.prunable",
    "prunable_parameters": "prunebench.pruning.prunable",
    "STRATEGIES": "prunebench.pruning.scores",
    "NoOptions": "prunebench.pruning.scores",
    "ScoreInputs": "prunebench.pruning.scores",
    "register_scorer": "prunebench.pruning.scores",
    "keep_count_for_compression": "prunebench.pruning.selection",
    "select": "prunebench.pruning.selection",
}

__all__ = [
    "STRATEGIES", "KeepPruned", "Mask", "NoOptions", "PrunablePolicy", "ScoreInputs",
    "classifier_name", "keep_count_for_compression", "prunable_parameters", "register_scorer",
    "select",
]


__getattr__ = lazy_getattr(__name__, globals(), _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
