"""A single run: the pipeline's stages with skip-if-done caching, its schedules and retraining.

Planning many runs (sweeps, executors, progress) is :mod:`prunebench.plan`, which imports this
package; nothing here imports it.
"""

from prunebench.experiment.pipeline import build_model, prepare, run_experiment
from prunebench.store.layout import RESULT_FILE

__all__ = ["RESULT_FILE", "build_model", "prepare", "run_experiment"]
