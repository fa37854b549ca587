"""Retraining modes: which weights a pruned network starts from, and which recipe trains it.

Each mode is a :class:`RetrainMode` built from its rules in
:mod:`prunebench.catalog.retrain_modes` (where its weights start, its recipe, the schedules it
accepts, the ``retrain.*`` settings it reads), which the config schema asks when it validates a
spec; this module adds how it retrains. Every mode trains through the one training loop with :class:`KeepPruned`, so pruned weights
stay exactly zero whatever the optimizer. See :class:`prunebench.spec.RetrainSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from prunebench.catalog.retrain_modes import RETRAIN_MODES, LrRewindRules, RetrainRules
from prunebench.spec import CHANNEL, ExperimentSpec, TrainSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.store.artifacts import load_tensors, save_tensors
from prunebench.store.layout import DENSE_DIR
from prunebench.models import create_model
from prunebench.metrics import mac_metrics
from prunebench.pruning.channels import layers_matching
from prunebench.pruning.compact import scratch_epochs, scratch_start
from prunebench.pruning import KeepPruned, Mask
from prunebench.train import TrainLog, train
from prunebench.train.batches import epoch_steps

# A fresh initialization must differ from the dense one (seed) yet be reproducible.
REINIT_SEED_OFFSET = 1_000_003
# Every (final or round) retraining sees the same data order; it differs from dense training's.
RETRAIN_SEED_OFFSET = 1

State = dict[str, torch.Tensor]


def steps_per_epoch(data: DataSplits, recipe: TrainSpec) -> int:
    return epoch_steps(data.train_x.shape[0], recipe)


def initial_weights(spec: ExperimentSpec, data: DataSplits, seed: int) -> State:
    """The model's weights as ``create_model`` initializes them under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(spec.model, data.input_shape, data.num_classes)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fresh_weights(spec: ExperimentSpec, data: DataSplits) -> State:
    """A random initialization other than the dense network's: the reinit/scratch control."""
    return initial_weights(spec, data, spec.seed + REINIT_SEED_OFFSET)


def scratch_weights(spec: ExperimentSpec, data: DataSplits, model: nn.Module, mask: Mask) -> State:
    """Scratch-E/-B's starting weights (Liu et al. 2019): the pruned architecture, freshly
    initialized. For a channel mask that is the compact model's default initialization (which
    follows each layer's new fan-in, :func:`prunebench.pruning.compact.scratch_model`) placed
    at the kept positions; for other masks, the full-width model's fresh initialization."""
    if spec.prune.structure != CHANNEL:
        return fresh_weights(spec, data)
    exclude = layers_matching(model, spec.prune.prunable.exclude)
    return scratch_start(model, mask, data.input_shape, spec.seed + REINIT_SEED_OFFSET, exclude)


class _Reached(Exception):
    """Raised by :class:`_Snapshot` to stop a training run at the rewinding step."""


class _Snapshot:
    def __init__(self, model: nn.Module, step: int) -> None:
        self.model, self.step = model, step
        self.state: State | None = None

    hands_mask_to_optimizer = False

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        pass

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


class RetrainMode(RetrainRules):
    """A retraining mode that retrains: its rules (where the weights start, which recipe trains
    them, which schedules it applies to, which ``retrain.*`` settings it reads) are the fields
    of :class:`prunebench.catalog.retrain_modes.RetrainRules`."""

    def recipe(self, spec: ExperimentSpec) -> TrainSpec:
        """The recipe this mode trains with (recorded in result.json)."""
        return spec.finetune if self.recipe_key == "finetune" else spec.train

    def training_recipe(self, spec: ExperimentSpec, model: nn.Module, data: DataSplits) -> TrainSpec:
        """The recipe of an actual retraining of the pruned ``model`` (scratch-b reads its MACs)."""
        return self.recipe(spec)

    def first_epoch(self, spec: ExperimentSpec, data: DataSplits) -> int:
        """The recipe's epoch the retraining starts at (its LR schedule continues from there)."""
        return 0

    def round_mode(self) -> RetrainMode:
        return mode_named(self.rounds) if self.rounds else self

    def load_start(
        self, model: nn.Module, spec: ExperimentSpec, data: DataSplits, mask: Mask, rewind_state: State | None
    ) -> None:
        if self.start == "rewound":
            if rewind_state is None:
                raise ValueError(f"{self.name} needs the rewind weights")
            load_weights(model, rewind_state)
        elif self.start == "fresh":
            load_weights(model, fresh_weights(spec, data))

    def retrain(
        self,
        model: nn.Module,
        data: DataSplits,
        spec: ExperimentSpec,
        mask: Mask,
        *,
        rewind_state: State | None,
        stage: str,
        recipe: TrainSpec | None = None,
    ) -> TrainLog:
        """Set the starting weights and train the pruned network in place.

        ``recipe`` replaces the mode's own (a schedule may fix it: at-init trains with ``train``).
        """
        if recipe is None:
            recipe = self.training_recipe(spec, model, data)  # before the weights change: the pruned model's MACs
        self.load_start(model, spec, data, mask, rewind_state)
        seed = spec.seed + RETRAIN_SEED_OFFSET
        return train_masked(model, data, recipe, mask, seed=seed, stage=stage, first_epoch=self.first_epoch(spec, data))


class LrRewind(RetrainMode, LrRewindRules):
    def first_epoch(self, spec: ExperimentSpec, data: DataSplits) -> int:
        return spec.retrain.rewind_epoch


class WeightRewind(RetrainMode):
    def first_epoch(self, spec: ExperimentSpec, data: DataSplits) -> int:
        return spec.retrain.rewind_step // steps_per_epoch(data, spec.train)


class Scratch(RetrainMode):
    def recipe(self, spec: ExperimentSpec) -> TrainSpec:
        if spec.retrain.scratch_epochs is None:
            return spec.train
        return spec.train.replace(epochs=spec.retrain.scratch_epochs)


class ScratchBudget(RetrainMode):
    """Liu et al. 2019's Scratch-E (the dense epochs) and Scratch-B (the dense compute)."""

    def training_recipe(self, spec: ExperimentSpec, model: nn.Module, data: DataSplits) -> TrainSpec:
        macs = mac_metrics(model, data.input_shape)  # the mask is applied: effective = pruned MACs
        mode: Literal["scratch-e", "scratch-b"] = "scratch-e" if self.name == "scratch-e" else "scratch-b"
        return spec.train.replace(epochs=scratch_epochs(mode, spec.train.epochs, macs.dense_total, macs.effective_total))

    def load_start(
        self, model: nn.Module, spec: ExperimentSpec, data: DataSplits, mask: Mask, rewind_state: State | None
    ) -> None:
        load_weights(model, scratch_weights(spec, data, model, mask))  # the pruned architecture's own init


# The class that retrains each mode of prunebench.catalog.RETRAIN_MODES (built from its rules);
# tests/test_spec_package.py checks none is missing.
_RUNNER_CLASSES: dict[str, type[RetrainMode]] = {
    "finetune": RetrainMode, "lr-rewind": LrRewind, "weight-rewind": WeightRewind, "reinit": RetrainMode,
    "scratch": Scratch, "scratch-e": ScratchBudget, "scratch-b": ScratchBudget,
}
RUNNERS: dict[str, RetrainMode] = {
    name: kind(**{f.name: getattr(RETRAIN_MODES.get(name), f.name) for f in dataclasses.fields(RetrainRules)})
    for name, kind in _RUNNER_CLASSES.items()
}


def mode_named(name: str) -> RetrainMode:
    """The mode that retrains as ``retrain.mode`` ``name`` says (an unknown name: its one-line error).

    A mode registered in the catalog as a RetrainMode (rules and runner in one object, as a
    plugin may add one) runs itself."""
    rules = RETRAIN_MODES.get(name)
    return rules if isinstance(rules, RetrainMode) else RUNNERS[name]


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
    return mode_named(mode).retrain(model, data, spec, mask, rewind_state=rewind_state, stage=stage)


def check_rewind_step(spec: ExperimentSpec, data: DataSplits) -> None:
    """Refuse a rewinding step beyond dense training before any training starts."""
    total = steps_per_epoch(data, spec.train) * spec.train.epochs
    if spec.retrain.rewind_step > total:
        raise ConfigError(f"retrain.rewind_step {spec.retrain.rewind_step} exceeds dense training's {total} steps")
