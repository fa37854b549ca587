"""The spec's public names under their first home, for code written against ``prunebench.config``
(plugins, scripts). The schema lives in :mod:`prunebench.spec`; import from there in new code.

Only names are re-exported: ``SPEC_VERSION`` here is a copy, and changing it changes no id (the
hashing rules read :mod:`prunebench.spec.hashing`).
"""

from prunebench.spec import (
    CHANNEL,
    CLASSIFIER_ONLY,
    DEVICE_PATTERN,
    LM_ONLY,
    MAX_SEED,
    SETTINGS_KEYS,
    SHUFFLE_SCHEDULES,
    SPEC_VERSION,
    CompressSpec,
    DenseSource,
    DenseSpec,
    EvaluationSpec,
    ExperimentSpec,
    FinetuneSpec,
    LMDenseSpec,
    PruneSpec,
    RecoverySpec,
    RetrainSpec,
    RunSettings,
    Spec,
    TrainSpec,
    apply_overrides,
    build_specs,
    format_validation_error,
    load_config,
    parse_override,
    read_config,
)

__all__ = [
    "CHANNEL", "CLASSIFIER_ONLY", "DEVICE_PATTERN", "LM_ONLY", "MAX_SEED", "SETTINGS_KEYS", "SHUFFLE_SCHEDULES",
    "SPEC_VERSION", "CompressSpec", "DenseSource", "DenseSpec", "EvaluationSpec", "ExperimentSpec", "FinetuneSpec",
    "LMDenseSpec", "PruneSpec", "RecoverySpec", "RetrainSpec", "RunSettings", "Spec", "TrainSpec",
    "apply_overrides", "build_specs", "format_validation_error", "load_config", "parse_override", "read_config",
]
