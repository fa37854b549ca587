"""prunebench: comparable, reproducible and honest neural-network pruning.

The public names are loaded when first used (PEP 562), so a command that needs only part of the
package, such as ``prunebench results`` reading the database, does not import torch for the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.lazy import lazy_getattr

if TYPE_CHECKING:
    from prunebench.api import finetune, fit, measure, prune
    from prunebench.spec import ExperimentSpec, PruneSpec, RunSettings, TrainSpec, load_config
    from prunebench.data import DATASETS, DataSplits, load_dataset
    from prunebench.errors import ConfigError, DataError, PrunebenchError, TrainingDiverged
    from prunebench.experiment import run_experiment
    from prunebench.metrics import evaluate, mac_metrics, size_metrics
    from prunebench.models import MODELS, create_model
    from prunebench.pruning import (
        STRATEGIES,
        KeepPruned,
        Mask,
        NoOptions,
        PrunablePolicy,
        ScoreInputs,
        prunable_parameters,
        register_scorer,
        select,
    )

# Where each public name lives.
_EXPORTS = {
    "finetune": "prunebench.api",
    "fit": "prunebench.api",
    "measure": "prunebench.api",
    "prune": "prunebench.api",
    "ExperimentSpec": "prunebench.spec",
    "PruneSpec": "prunebench.spec",
    "RunSettings": "prunebench.spec",
    "TrainSpec": "prunebench.spec",
    "load_config": "prunebench.spec",
    "DATASETS": "prunebench.data",
    "DataSplits": "prunebench.data",
    "load_dataset": "prunebench.data",
    "ConfigError": "prunebench.errors",
    "DataError": "prunebench.errors",
    "PrunebenchError": "prunebench.errors",
    "TrainingDiverged": "prunebench.errors",
    "run_experiment": "prunebench.experiment",
    "evaluate": "prunebench.metrics",
    "mac_metrics": "prunebench.metrics",
    "size_metrics": "prunebench.metrics",
    "MODELS": "prunebench.models",
    "create_model": "prunebench.models",
    "STRATEGIES": "prunebench.pruning",
    "KeepPruned": "prunebench.pruning",
    "Mask": "prunebench.pruning",
    "NoOptions": "prunebench.pruning",
    "PrunablePolicy": "prunebench.pruning",
    "ScoreInputs": "prunebench.pruning",
    "prunable_parameters": "prunebench.pruning",
    "register_scorer": "prunebench.pruning",
    "select": "prunebench.pruning",
}

__all__ = [
    "DATASETS", "MODELS", "STRATEGIES", "ConfigError", "DataError", "DataSplits",
    "ExperimentSpec", "KeepPruned", "Mask", "NoOptions", "PrunablePolicy", "PruneSpec",
    "PrunebenchError", "RunSettings", "ScoreInputs", "TrainSpec", "TrainingDiverged",
    "create_model", "evaluate", "finetune", "fit", "load_config", "load_dataset", "mac_metrics",
    "measure", "prunable_parameters", "prune", "register_scorer", "run_experiment", "select",
    "size_metrics",
]


__getattr__ = lazy_getattr(__name__, globals(), _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
