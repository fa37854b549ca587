"""Retraining modes: which weights a pruned network starts from, and which recipe trains it.

Every mode trains through the one training loop with :class:`KeepPruned`, so pruned weights
stay exactly zero whatever the optimizer. See :class:`prunebench.config.RetrainSpec`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from prunebench.config import ExperimentSpec, TrainSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.store.artifacts import load_tensors, save_tensors
from prunebench.store.layout import DENSE_DIR
from prunebench.models import create_model
from prunebench.metrics import mac_metrics
from prunebench.pruning.compact import scratch_epochs
from prunebench.pruning import KeepPruned, Mask
from prunebench.train import TrainLog, train

# A fresh initialization must differ from the dense one (seed) yet be reproducible.
REINIT_SEED_OFFSET = 1_000_003
# Every (final or round) retraining sees the same data order; it differs from dense training's.
RETRAIN_SEED_OFFSET = 1

State = dict[str, torch.Tensor]


def steps_per_epoch(data: DataSplits, recipe: TrainSpec) -> int:
    return math.ceil(data.train_x.shape[0] / recipe.batch_size)


def initial_weights(spec: ExperimentSpec, data: DataSplits, seed: int) -> State:
    """The model's weights as ``create_model`` initializes them under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(spec.model, data.input_shape, data.num_classes)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fresh_weights(spec: ExperimentSpec, data: DataSplits) -> State:
    """A random initialization other than the dense network's: the reinit/scratch control."""
    return initial_weights(spec, data, spec.seed + REINIT_SEED_OFFSET)


class _Reached(Exception):
    """Raised by :class:`_Snapshot` to stop a training run at the rewinding step."""


class _Snapshot:
    def __init__(self, model: nn.Module, step: int) -> None:
        self.model, self.step = model, step
        self.state: State | None = None

    def on_train_start(self) -> None:
        pass

    def on_step_end(self, step: int) -> None:
        if step == self.step:
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            raise _Reached


def rewind_weights(spec: ExperimentSpec, data: DataSplits, results_dir: Path, device: torch.device) -> State:
    """The dense network's weights after ``retrain.rewind_step`` steps of dense training.

    Step 0 is the initialization. Later steps replay dense training (deterministic on CPU) up
    to that step and cache the result beside the dense checkpoint.
    """
    step = spec.retrain.rewind_step
    if step == 0:
        return initial_weights(spec, data, spec.seed)
    total = steps_per_epoch(data, spec.train) * spec.train.epochs
    if step > total:
        raise ConfigError(f"retrain.rewind_step {step} exceeds dense training's {total} steps")
    path = results_dir / DENSE_DIR / spec.dense_spec().content_hash() / f"step_{step}.pt"
    if path.is_file():
        return load_tensors(path)
    model = create_model(spec.model, data.input_shape, data.num_classes)
    model.load_state_dict(initial_weights(spec, data, spec.seed))
    model.to(device)
    snapshot = _Snapshot(model, step)
    try:
        train(model, data, spec.train, seed=spec.seed, callbacks=[snapshot], stage=f"replay to step {step}")
    except _Reached:
        pass
    if snapshot.state is None:  # cannot happen for step <= total; guards a changed loop
        raise RuntimeError(f"dense training ended before step {step}")
    save_tensors(path, snapshot.state)
    return snapshot.state


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in state.items()})


def train_masked(
    model: nn.Module, data: DataSplits, recipe: TrainSpec, mask: Mask, *, seed: int, stage: str, first_epoch: int = 0
) -> TrainLog:
    """Train with ``mask``'s pruned entries held at zero (applied before the first step too)."""
    return train(model, data, recipe, seed=seed, callbacks=[KeepPruned(model, mask)], stage=stage, first_epoch=first_epoch)


def retrain(
    model: nn.Module,
    data: DataSplits,
    spec: ExperimentSpec,
    mask: Mask,
    mode: str,
    *,
    rewind_state: State | None,
    stage: str,
) -> TrainLog:
    """Set the starting weights for ``mode`` and train the pruned network in place."""
    seed = spec.seed + RETRAIN_SEED_OFFSET
    if mode == "finetune":
        return train_masked(model, data, spec.finetune, mask, seed=seed, stage=stage)
    if mode == "lr-rewind":
        return train_masked(model, data, spec.train, mask, seed=seed, stage=stage, first_epoch=spec.retrain.rewind_epoch)
    if mode == "weight-rewind":
        if rewind_state is None:
            raise ValueError("weight-rewind needs the rewind weights")
        load_weights(model, rewind_state)
        first = spec.retrain.rewind_step // steps_per_epoch(data, spec.train)
        return train_masked(model, data, spec.train, mask, seed=seed, stage=stage, first_epoch=first)
    if mode in ("scratch-e", "scratch-b"):
        macs = mac_metrics(model, data.input_shape)  # the mask is applied: effective = pruned MACs
        epochs = scratch_epochs(mode, spec.train.epochs, macs.dense_total, macs.effective_total)
        load_weights(model, fresh_weights(spec, data))
        return train_masked(model, data, spec.train.model_copy(update={"epochs": epochs}), mask, seed=seed, stage=stage)
    if mode in ("reinit", "scratch"):
        load_weights(model, fresh_weights(spec, data))
        recipe = spec.train
        if mode == "scratch" and spec.retrain.scratch_epochs is not None:
            recipe = recipe.model_copy(update={"epochs": spec.retrain.scratch_epochs})
        return train_masked(model, data, recipe, mask, seed=seed, stage=stage)
    raise ConfigError(
        f"retrain.mode must be finetune, lr-rewind, weight-rewind, reinit, scratch, scratch-e or scratch-b, got {mode!r}"
    )


def recipe_of(spec: ExperimentSpec, mode: str) -> TrainSpec:
    """The recipe ``mode`` trains with (recorded in result.json)."""
    if mode == "finetune":
        return spec.finetune
    if mode == "scratch" and spec.retrain.scratch_epochs is not None:
        return spec.train.model_copy(update={"epochs": spec.retrain.scratch_epochs})
    return spec.train
