"""Run a pruning schedule with its retraining mode on a model that holds the dense weights.

The step-by-step targets come from :mod:`prunebench.pruning.schedules` (pure functions); this
module prunes and trains. Each runner returns a :class:`ScheduleOutcome` that the pipeline
turns into ``result.json``.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.config import ExperimentSpec, PruneSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.experiment.retrain import (
    RETRAIN_SEED_OFFSET,
    initial_weights,
    load_weights,
    recipe_of,
    retrain,
    rewind_weights,
    steps_per_epoch,
    train_masked,
)
from prunebench.metrics import evaluate
from prunebench.metrics.accuracy import AccuracyMetrics
from prunebench.pruning import KeepPruned, Mask, prunable_parameters
from prunebench.pruning.prune import keep_count, prune_model
from prunebench.pruning.schedules import (
    cubic_keep,
    is_update_step,
    iterative_ladder,
    ladder_to_target,
    layer_ladder,
)
from prunebench.train import TrainLog, train

log = logging.getLogger("prunebench")

# Modes that carry information from one iterative round to the next; the controls (reinit,
# scratch) take the lottery-ticket trajectory (weight rewinding) and differ only at the end.
ROUND_MODES = ("finetune", "lr-rewind", "weight-rewind")


@dataclass
class ScheduleOutcome:
    mask: Mask
    pre: AccuracyMetrics  # right after the last pruning step, before the final training
    history: TrainLog  # the final training
    prune_time_s: float
    train_time_s: float
    rounds: list[dict[str, Any]] = field(default_factory=list)  # iterative: one entry per round
    round_masks: list[Mask] = field(default_factory=list)
    gradual_updates: list[dict[str, int]] = field(default_factory=list)


def gradual_window(spec: ExperimentSpec, data: DataSplits) -> tuple[int, int, int]:
    """(t0, dt, n) of the cubic schedule; ConfigError if it does not fit in fine-tuning."""
    g = spec.prune.gradual
    total = steps_per_epoch(data, spec.finetune) * spec.finetune.epochs
    end = g.end_step if g.end_step is not None else (3 * total) // 4
    count = (end - g.start_step) // g.frequency
    if count < 1:
        raise ConfigError(
            f"prune.gradual: no mask update fits between start_step {g.start_step} and step {end} "
            f"every {g.frequency} steps (fine-tuning has {total} steps; lower prune.gradual.frequency)"
        )
    last = g.start_step + count * g.frequency
    if last > total:
        raise ConfigError(f"prune.gradual: the last mask update (step {last}) comes after fine-tuning's {total} steps")
    return g.start_step, g.frequency, count


def check_schedule(spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> None:
    """Reject a schedule that cannot run on this data before any training starts."""
    if spec.prune.schedule == "gradual":
        gradual_window(spec, data)
    if spec.retrain.mode == "weight-rewind" or spec.prune.schedule == "iterative":
        total = steps_per_epoch(data, spec.train) * spec.train.epochs
        if spec.retrain.rewind_step > total:
            raise ConfigError(f"retrain.rewind_step {spec.retrain.rewind_step} exceeds dense training's {total} steps")
    if spec.prune.schedule == "iterative":
        params = prunable_parameters(model, spec.prune.prunable)
        for name in spec.prune.iterative.layer_rates:
            if not any(fnmatch.fnmatchcase(p, name) for p in params):
                raise ConfigError(f"prune.iterative.layer_rates: {name!r} matches no prunable parameter ({', '.join(params)})")


def iterative_plan(model: nn.Module, prune: PruneSpec) -> list[int | dict[str, int]]:
    """Keep targets of every round: totals, or per-parameter counts with per-layer rates."""
    it = prune.iterative
    sizes = {name: p.numel() for name, p in prunable_parameters(model, prune.prunable).items()}
    total = sum(sizes.values())
    if it.rounds is not None:
        if prune.scope == "layer":
            return list(layer_ladder(sizes, it.rate, it.layer_rates, it.rounds))
        return list(iterative_ladder(total, it.rate, it.rounds))
    return list(ladder_to_target(total, it.rate, keep_count(model, prune)))


def run_one_shot(spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
    started = time.perf_counter()
    mask = prune_model(model, data, spec.prune, seed=spec.seed)
    prune_time = time.perf_counter() - started
    pre = evaluate(model, data.test_x, data.test_y)
    rewind = rewind_weights(spec, data, results_dir, _device(model)) if spec.retrain.mode == "weight-rewind" else None
    started = time.perf_counter()
    history = retrain(model, data, spec, mask, spec.retrain.mode, rewind_state=rewind, stage="finetune")
    return ScheduleOutcome(mask, pre, history, prune_time, time.perf_counter() - started)


def run_iterative(spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
    final_mode = spec.retrain.mode
    round_mode = final_mode if final_mode in ROUND_MODES else "weight-rewind"
    needs_rewind = "weight-rewind" in (round_mode, final_mode)
    rewind = rewind_weights(spec, data, results_dir, _device(model)) if needs_rewind else None
    plan = iterative_plan(model, spec.prune)
    prunable_total = sum(p.numel() for p in prunable_parameters(model, spec.prune.prunable).values())
    mask: Mask | None = None
    rounds: list[dict[str, Any]] = []
    masks: list[Mask] = []
    prune_time = train_time = 0.0
    pre = history = None
    for index, keep in enumerate(plan, start=1):
        last = index == len(plan)
        started = time.perf_counter()
        mask = prune_model(model, data, spec.prune, seed=spec.seed + index - 1, previous=mask, keep=keep)
        prune_time += time.perf_counter() - started
        pre = evaluate(model, data.test_x, data.test_y)
        mode = final_mode if last else round_mode
        started = time.perf_counter()
        history = retrain(model, data, spec, mask, mode, rewind_state=rewind, stage=f"round {index}/{len(plan)}")
        train_time += time.perf_counter() - started
        after = evaluate(model, data.test_x, data.test_y)
        rounds.append({
            "round": index,
            "mode": mode,
            "weights_remaining": mask.kept / prunable_total,
            "prunable_nonzero": mask.kept,
            "pre_retrain_top1": pre.top1,
            "top1": after.top1,
            "val_top1": history.epochs[-1].val_top1 if history.epochs else None,
        })
        masks.append(mask)
        log.info("round %d/%d: %.1f%% of prunable weights remain, top-1 %.2f%%",
                 index, len(plan), 100 * mask.kept / prunable_total, 100 * after.top1)
    if mask is None or pre is None or history is None:
        raise ValueError("an iterative schedule needs at least one round")
    return ScheduleOutcome(mask, pre, history, prune_time, train_time, rounds=rounds, round_masks=masks)


class GradualPruning:
    """Training callback: update the mask on the cubic schedule, keep pruned weights at zero."""

    def __init__(self, model: nn.Module, data: DataSplits, spec: ExperimentSpec, window: tuple[int, int, int]) -> None:
        self.model, self.data, self.spec = model, data, spec
        self.start, self.frequency, self.count = window
        params = prunable_parameters(model, spec.prune.prunable)
        self.total = sum(p.numel() for p in params.values())
        self.final_keep = keep_count(model, spec.prune)
        self.mask = Mask.ones(params)
        self.keeper = KeepPruned(model, self.mask)
        self.updates: list[dict[str, int]] = []
        self.prune_time = 0.0

    def keep_at(self, step: int) -> int:
        g = self.spec.prune.gradual
        return cubic_keep(step, self.total, self.final_keep, g.initial_sparsity, self.start, self.frequency, self.count)

    def update(self, step: int) -> None:
        keep = self.keep_at(step)
        if keep >= self.mask.kept:
            return
        started = time.perf_counter()
        self.mask = prune_model(self.model, self.data, self.spec.prune, seed=self.spec.seed + step,
                                previous=self.mask, keep=keep)
        self.keeper = KeepPruned(self.model, self.mask)
        self.prune_time += time.perf_counter() - started
        self.updates.append({"step": step, "prunable_nonzero": self.mask.kept})

    def on_train_start(self) -> None:
        if is_update_step(0, self.start, self.frequency, self.count):
            self.update(0)

    def on_step_end(self, step: int) -> None:
        self.keeper.apply()
        if is_update_step(step, self.start, self.frequency, self.count):
            self.update(step)


def run_gradual(spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
    pruner = GradualPruning(model, data, spec, gradual_window(spec, data))
    pre = evaluate(model, data.test_x, data.test_y)  # the dense network: pruning happens while training
    started = time.perf_counter()
    history = train(model, data, spec.finetune, seed=spec.seed + RETRAIN_SEED_OFFSET, callbacks=[pruner], stage="gradual")
    elapsed = time.perf_counter() - started
    return ScheduleOutcome(pruner.mask, pre, history, pruner.prune_time, elapsed - pruner.prune_time,
                           gradual_updates=pruner.updates)


def run_at_init(spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
    """Prune the dense network's own initialization; train it with the ``train`` recipe."""
    load_weights(model, initial_weights(spec, data, spec.seed))
    started = time.perf_counter()
    mask = prune_model(model, data, spec.prune, seed=spec.seed)
    prune_time = time.perf_counter() - started
    pre = evaluate(model, data.test_x, data.test_y)
    started = time.perf_counter()
    if spec.retrain.mode == "reinit":
        history = retrain(model, data, spec, mask, "reinit", rewind_state=None, stage="train sparse (reinit)")
    else:
        history = train_masked(model, data, spec.train, mask, seed=spec.seed + RETRAIN_SEED_OFFSET, stage="train sparse")
    return ScheduleOutcome(mask, pre, history, prune_time, time.perf_counter() - started)


RUNNERS = {"one-shot": run_one_shot, "iterative": run_iterative, "gradual": run_gradual, "at-init": run_at_init}


def run_schedule(spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
    """Prune and retrain ``model`` (holding the dense weights) as ``spec`` says."""
    return RUNNERS[spec.prune.schedule](spec, data, model, results_dir)


def final_recipe(spec: ExperimentSpec) -> Mapping[str, Any]:
    """The recipe of the final training, as recorded in result.json."""
    if spec.prune.schedule == "at-init" and spec.retrain.mode == "finetune":
        return spec.train.model_dump(mode="json")
    if spec.prune.schedule == "gradual":
        return spec.finetune.model_dump(mode="json")
    return recipe_of(spec, spec.retrain.mode).model_dump(mode="json")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
