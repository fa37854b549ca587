"""Experiments: stages with skip-if-done caching."""

from prunebench.experiment.pipeline import RESULT_FILE, build_model, prepare, run_experiment

__all__ = ["RESULT_FILE", "build_model", "prepare", "run_experiment"]
