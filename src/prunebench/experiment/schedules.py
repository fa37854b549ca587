"""How each pruning schedule runs: its data-dependent checks, its runner and the recipe of its
final training. Each class extends the schedule's rules (its config section and validation,
:mod:`prunebench.catalog.schedules`), which the config schema asks without importing this module.

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

from prunebench.catalog.schedules import SCHEDULES, AtInitRules, GradualRules, IterativeRules, OneShotRules, ScheduleRules
from prunebench.spec import ExperimentSpec, PruneSpec, TrainSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.experiment.retrain import (
    RETRAIN_SEED_OFFSET,
    RetrainMode,
    check_rewind_step,
    initial_weights,
    mode_named,
    load_weights,
    rewind_weights,
    steps_per_epoch,
)
from prunebench.metrics import evaluate
from prunebench.metrics.accuracy import AccuracyMetrics
from prunebench.metrics.cost import PeakMemory
from prunebench.metrics.trainability import TrainabilityMetrics, fixed_batch, trainability
from prunebench.pruning import KeepPruned, Mask, prunable_parameters
from prunebench.pruning.prune import keep_count, prune_model
from prunebench.pruning.schedules import (
    CubicSchedule,
    iterative_keep,
    iterative_ladder,
    ladder_to_target,
    layer_ladder,
    layer_rate,
)
from prunebench.train import TrainLog, train

log = logging.getLogger("prunebench")


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
    trainability: TrainabilityMetrics | None = None  # measured where ``pre`` is
    prune_peak_mb: float = 0.0  # the largest pruning step's peak memory above its start
    peak_method: str = ""


def timed_prune(model: nn.Module, data: DataSplits, spec: ExperimentSpec, **kwargs: Any) -> tuple[Mask, float, PeakMemory]:
    """prune_model, with its wall time and peak memory (the cost of scoring and selection)."""
    peak = PeakMemory(_device(model))
    started = time.perf_counter()
    with peak:
        mask = prune_model(model, data, spec.prune, **kwargs)
    return mask, time.perf_counter() - started, peak


def after_pruning(model: nn.Module, data: DataSplits) -> tuple[AccuracyMetrics, TrainabilityMetrics | None]:
    """Test accuracy and trainability of the network as pruning left it, before any retraining."""
    return evaluate(model, data.test_x, data.test_y), trainability(model, *fixed_batch(data.train_x, data.train_y))


def mode_of(spec: ExperimentSpec) -> RetrainMode:
    return mode_named(spec.retrain.mode)


def _rewind_state(spec: ExperimentSpec, data: DataSplits, results_dir: Path, model: nn.Module, *modes: RetrainMode) -> Any:
    """The rewinding weights if one of ``modes`` starts from them, else None."""
    if any(m.start == "rewound" for m in modes):
        return rewind_weights(spec, data, results_dir, _device(model))
    return None


class Schedule(ScheduleRules):
    """A pruning schedule that runs: its rules (name, section, validation) come from the
    schedule's class in :mod:`prunebench.catalog.schedules`, listed after this one."""

    def check(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> None:
        """Raise ConfigError if the schedule cannot run on this data, before any training."""

    def run(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
        raise NotImplementedError

    def final_recipe(self, spec: ExperimentSpec) -> TrainSpec:
        """The recipe of the final training, as recorded in result.json."""
        return mode_of(spec).recipe(spec)


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


class OneShot(Schedule, OneShotRules):
    def run(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
        mode = mode_of(spec)
        mask, prune_time, peak = timed_prune(model, data, spec, seed=spec.seed)
        pre, health = after_pruning(model, data)
        rewind = _rewind_state(spec, data, results_dir, model, mode)
        started = time.perf_counter()
        history = mode.retrain(model, data, spec, mask, rewind_state=rewind, stage="finetune")
        return ScheduleOutcome(mask, pre, history, prune_time, time.perf_counter() - started, trainability=health,
                               prune_peak_mb=peak.mb, peak_method=peak.method)


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


class Iterative(Schedule, IterativeRules):
    """Rounds of prune -> retrain. The intermediate rounds retrain with the mode's round mode:
    the mode itself where it carries the network from round to round (finetune, lr-rewind,
    weight-rewind); weight rewinding for the controls (reinit, scratch*), which take the
    lottery-ticket trajectory and differ only at the end."""

    def check(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> None:
        params = prunable_parameters(model, spec.prune.prunable)
        it = spec.prune.iterative
        for name in it.layer_rates:
            if not any(fnmatch.fnmatchcase(p, name) for p in params):
                raise ConfigError(f"prune.iterative.layer_rates: {name!r} matches no prunable parameter ({', '.join(params)})")
        if it.rounds is not None:  # rounds past the one that keeps no weight would prune nothing, for hours
            sizes = {name: p.numel() for name, p in params.items()}

            def kept(r: int) -> int:  # as iterative_plan counts them
                if spec.prune.scope != "layer":
                    return iterative_keep(sum(sizes.values()), it.rate, r)
                return sum(iterative_keep(n, layer_rate(name, it.rate, it.layer_rates), r) for name, n in sizes.items())

            if kept(it.rounds) == 0:
                most = 0
                while kept(most + 1) > 0:
                    most += 1
                raise ConfigError(
                    f"prune.iterative.rounds: {it.rounds} rounds at rate {it.rate:g} leave none of the "
                    f"{sum(sizes.values())} prunable weights after round {most + 1} (allowed: at most {most})"
                )

    def run(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
        final_mode = mode_of(spec)
        round_mode = final_mode.round_mode()
        assert isinstance(round_mode, RetrainMode)
        rewind = _rewind_state(spec, data, results_dir, model, round_mode, final_mode)
        plan = iterative_plan(model, spec.prune)
        prunable_total = sum(p.numel() for p in prunable_parameters(model, spec.prune.prunable).values())
        mask: Mask | None = None
        rounds: list[dict[str, Any]] = []
        masks: list[Mask] = []
        prune_time = train_time = peak_mb = 0.0
        pre = history = health = peak = None
        for index, keep in enumerate(plan, start=1):
            last = index == len(plan)
            mask, seconds, peak = timed_prune(model, data, spec, seed=spec.seed + index - 1, previous=mask, keep=keep)
            prune_time += seconds
            peak_mb = max(peak_mb, peak.mb)
            if last:  # the state the final training starts from
                pre, health = after_pruning(model, data)
            else:
                pre = evaluate(model, data.test_x, data.test_y)
            mode = final_mode if last else round_mode
            started = time.perf_counter()
            history = mode.retrain(model, data, spec, mask, rewind_state=rewind, stage=f"round {index}/{len(plan)}")
            train_time += time.perf_counter() - started
            after = evaluate(model, data.test_x, data.test_y)
            rounds.append({
                "round": index,
                "mode": mode.name,
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
        return ScheduleOutcome(mask, pre, history, prune_time, train_time, rounds=rounds, round_masks=masks,
                               trainability=health, prune_peak_mb=peak_mb, peak_method=peak.method if peak else "")


class GradualPruning:
    """Training callback: update the mask on the cubic schedule, keep pruned weights at zero."""

    def __init__(self, model: nn.Module, data: DataSplits, spec: ExperimentSpec, window: tuple[int, int, int]) -> None:
        self.model, self.data, self.spec = model, data, spec
        start, frequency, count = window
        params = prunable_parameters(model, spec.prune.prunable)
        self.schedule = CubicSchedule(
            total=sum(p.numel() for p in params.values()), final_keep=keep_count(model, spec.prune),
            initial_sparsity=spec.prune.gradual.initial_sparsity, start=start, frequency=frequency, count=count,
        )
        self.mask = Mask.ones(params)
        self.keeper = KeepPruned(model, self.mask)
        self.updates: list[dict[str, int]] = []
        self.prune_time = 0.0
        self.peak_mb = 0.0
        self.peak_method = ""

    def keep_at(self, step: int) -> int:
        return self.schedule.target_at(step)

    def update(self, step: int) -> None:
        keep = self.keep_at(step)
        if keep >= self.mask.kept:
            return
        self.mask, seconds, peak = timed_prune(self.model, self.data, self.spec, seed=self.spec.seed + step,
                                               previous=self.mask, keep=keep)
        self.keeper = KeepPruned(self.model, self.mask)
        self.prune_time += seconds
        self.peak_mb, self.peak_method = max(self.peak_mb, peak.mb), peak.method
        self.updates.append({"step": step, "prunable_nonzero": self.mask.kept})

    hands_mask_to_optimizer = False  # re-masks after each step: the mask changes while it trains

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def on_train_start(self) -> None:
        if self.schedule.is_update(0):
            self.update(0)

    def on_step_end(self, step: int) -> None:
        self.keeper.apply()
        if self.schedule.is_update(step):
            self.update(step)


class Gradual(Schedule, GradualRules):
    def check(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> None:
        gradual_window(spec, data)

    def run(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
        pruner = GradualPruning(model, data, spec, gradual_window(spec, data))
        pre, health = after_pruning(model, data)  # the dense network: pruning happens while training
        started = time.perf_counter()
        history = train(model, data, spec.finetune, seed=spec.seed + RETRAIN_SEED_OFFSET, callbacks=[pruner], stage="gradual")
        elapsed = time.perf_counter() - started
        return ScheduleOutcome(pruner.mask, pre, history, pruner.prune_time, elapsed - pruner.prune_time,
                               gradual_updates=pruner.updates, trainability=health,
                               prune_peak_mb=pruner.peak_mb, peak_method=pruner.peak_method)

    def final_recipe(self, spec: ExperimentSpec) -> TrainSpec:
        return spec.finetune  # pruning happens during fine-tuning


class AtInit(Schedule, AtInitRules):
    """Prune the dense network's own initialization; train it with the ``train`` recipe.

    Retraining mode ``finetune`` trains the pruned initialization itself (there is no trained
    network to fine-tune, so it uses the ``train`` recipe); ``reinit`` a fresh one.
    """

    def run(self, spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
        mode = mode_of(spec)
        load_weights(model, initial_weights(spec, data, spec.seed))
        mask, prune_time, peak = timed_prune(model, data, spec, seed=spec.seed)
        pre, health = after_pruning(model, data)
        started = time.perf_counter()
        stage = "train sparse" if mode.start == "pruned" else f"train sparse ({mode.name})"
        history = mode.retrain(model, data, spec, mask, rewind_state=None, stage=stage, recipe=self.final_recipe(spec))
        return ScheduleOutcome(mask, pre, history, prune_time, time.perf_counter() - started, trainability=health,
                               prune_peak_mb=peak.mb, peak_method=peak.method)

    def final_recipe(self, spec: ExperimentSpec) -> TrainSpec:
        return spec.train  # there is no trained network to fine-tune: a pruned initialization is trained


# How each schedule of prunebench.catalog.SCHEDULES runs; tests/test_spec_package.py checks none is missing.
RUNNERS: dict[str, Schedule] = {s.name: s for s in (OneShot(), Iterative(), Gradual(), AtInit())}


def schedule_of(spec: ExperimentSpec) -> Schedule:
    """The schedule that runs ``spec``; one registered in the catalog as a Schedule (rules and
    runner in one object, as a plugin may add one) runs itself."""
    rules = SCHEDULES.get(spec.prune.schedule)
    return rules if isinstance(rules, Schedule) else RUNNERS[rules.name]


def check_schedule(spec: ExperimentSpec, data: DataSplits, model: nn.Module) -> None:
    """Reject a schedule that cannot run on this data before any training starts."""
    check_rewind_step(spec, data)
    schedule_of(spec).check(spec, data, model)


def run_schedule(spec: ExperimentSpec, data: DataSplits, model: nn.Module, results_dir: Path) -> ScheduleOutcome:
    """Prune and retrain ``model`` (holding the dense weights) as ``spec`` says."""
    return schedule_of(spec).run(spec, data, model, results_dir)


def final_recipe(spec: ExperimentSpec) -> Mapping[str, Any]:
    """The recipe of the final training, as recorded in result.json."""
    return schedule_of(spec).final_recipe(spec).model_dump(mode="json")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
