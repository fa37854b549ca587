"""prunebench: comparable, reproducible and honest neural-network pruning."""

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

__all__ = [
    "DATASETS", "MODELS", "STRATEGIES", "ConfigError", "DataError", "DataSplits",
    "ExperimentSpec", "KeepPruned", "Mask", "NoOptions", "PrunablePolicy", "PruneSpec",
    "PrunebenchError", "RunSettings", "ScoreInputs", "TrainSpec", "TrainingDiverged",
    "create_model", "evaluate", "finetune", "fit", "load_config", "load_dataset", "mac_metrics",
    "measure", "prunable_parameters", "prune", "register_scorer", "run_experiment", "select",
    "size_metrics",
]
