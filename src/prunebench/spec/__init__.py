"""Typed, frozen, validated specs. A run's canonical JSON (every resolved value and the spec
version) hashes to its id.

Everything that can change a result belongs to :class:`ExperimentSpec`. Where data lives, the
device and thread count belong to :class:`RunSettings`: they do not change the run id.

The schema knows names, not implementations: strategies, structures, schedules, retraining
modes, models and datasets are looked up in :mod:`prunebench.catalog` when a spec is validated.
Validators check values, never which fields were given, so a spec's ``model_dump`` validates
back to the same spec.

One module per concern, lowest first: ``hashing`` (run ids) and ``messages`` (one-line errors);
``base`` (the common :class:`Spec` and strict types); the sections ``training``
(train/finetune/retrain), ``language_model`` (calibration/evaluation/recovery), ``prune``,
``compress`` and ``dense``; ``experiment`` (the whole run); ``settings`` (not hashed); ``load``
(overrides and files).
"""

from prunebench.spec.base import MAX_SEED, SHA256_PATTERN, Bool, Float, Int, Spec
from prunebench.spec.compress import LAYER_KINDS, MAX_BITS, CompressSpec
from prunebench.spec.dense import NEEDS_DENSE_TRAINING, DenseSource, DenseSpec, LMDenseSpec
from prunebench.spec.experiment import CLASSIFIER_ONLY, LM_ONLY, ExperimentSpec
from prunebench.spec.hashing import RUN_ID_LENGTH, SPEC_VERSION
from prunebench.spec.language_model import CalibrationSpec, EvaluationSpec, RecoverySpec
from prunebench.spec.load import (
    SWEEP_SECTION,
    apply_overrides,
    build_specs,
    deep_copy,
    format_validation_error,
    key_suggestion,
    load_config,
    parse_override,
    read_config,
    set_dotted,
)
from prunebench.spec.prune import CHANNEL, MERGE_THRESHOLD, SHUFFLE_SCHEDULES, GradualSpec, IterativeSpec, PruneSpec
from prunebench.spec.settings import DEVICE_PATTERN, MAX_LATENCY_BATCH, MAX_THREADS, SETTINGS_KEYS, RunSettings
from prunebench.spec.training import FinetuneSpec, RetrainSpec, TrainSpec, late_milestones

__all__ = [
    "CHANNEL", "CLASSIFIER_ONLY", "DEVICE_PATTERN", "LAYER_KINDS", "LM_ONLY", "MAX_BITS", "MAX_LATENCY_BATCH",
    "MAX_SEED", "MAX_THREADS", "MERGE_THRESHOLD", "NEEDS_DENSE_TRAINING", "RUN_ID_LENGTH", "SETTINGS_KEYS",
    "SHA256_PATTERN", "SHUFFLE_SCHEDULES", "SPEC_VERSION", "SWEEP_SECTION",
    "Bool", "CalibrationSpec", "CompressSpec", "DenseSource", "DenseSpec", "EvaluationSpec", "ExperimentSpec",
    "FinetuneSpec", "Float", "GradualSpec", "Int", "IterativeSpec", "LMDenseSpec", "PruneSpec", "RecoverySpec",
    "RetrainSpec", "RunSettings", "Spec", "TrainSpec",
    "apply_overrides", "build_specs", "deep_copy", "format_validation_error", "key_suggestion", "late_milestones",
    "load_config", "parse_override", "read_config", "set_dotted",
]
