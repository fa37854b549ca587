"""ONE training loop for dense training, fine-tuning, scratch training and a language model's recovery.

Batches come from a :class:`~prunebench.train.batches.BatchSource`. A classifier's follow a
seeded permutation per epoch and come through :func:`prunebench.data.batches`: sliced from
in-memory tensors (no DataLoader, no per-sample Python), or decoded from files by DataLoader
workers when the data streams, the same batches either way. On CUDA, in-memory data takes the
device path (:mod:`prunebench.data.device_batches`): the epoch's permutation and crops drawn up
front and sent to the GPU once, the same batches again, without a host round trip per batch.
Callbacks hook in once the optimizer exists (``on_optimizer``, optional), at the start and after
each optimizer step; masking, gradual pruning and the snapshot that rewinding takes are
callbacks, not special cases. There is no per-epoch hook: validation runs after each epoch in
the loop itself, and checkpoints are written by the stages that call it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.spec import TrainSpec
from prunebench.data import DataSplits
from prunebench.errors import TrainingDiverged
from prunebench.pruning.masked_sgd import MaskedSGD
from prunebench.train.averaging import WeightAverage, onecycle
from prunebench.train.batches import BatchSource, DataPath, SplitBatches
from prunebench.train.progress import EpochProgress
from prunebench.train.step import TrainingStep

log = logging.getLogger("prunebench.train")  # a child of "prunebench": the demo quiets training lines alone


class Callback(Protocol):
    """Hooks of the training loop, every one declared (none is looked up by name).

    ``hands_mask_to_optimizer``: the callback can give the optimizer its mask in
    ``on_optimizer``, so the loop builds the SGD that can take one (:class:`MaskedSGD`).
    ``on_optimizer`` is called once the loop's optimizer exists, before ``on_train_start``."""

    @property
    def hands_mask_to_optimizer(self) -> bool: ...

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None: ...

    def on_train_start(self) -> None: ...

    def on_step_end(self, step: int) -> None: ...


@dataclass
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    val_top1: float | None
    val_loss: float | None


@dataclass
class TrainLog:
    epochs: list[EpochRecord] = field(default_factory=list)
    steps: int = 0


def build_optimizer(params: Sequence[nn.Parameter], spec: TrainSpec, *, maskable: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer. ``maskable``: SGD is :class:`MaskedSGD`, torch's SGD step, which a
    masking callback can hand its mask to (``on_optimizer``); otherwise ``torch.optim.SGD``."""
    if spec.optimizer == "sgd":
        return (MaskedSGD if maskable else torch.optim.SGD)(
            params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
        )
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def lr_factor(spec: TrainSpec) -> Callable[[int], float]:
    """LR multiplier as a pure function of the epoch (onecycle sets its LR per step instead)."""
    if spec.lr_schedule == "cosine":
        return lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / max(spec.epochs, 1)))
    if spec.lr_schedule == "step":
        return lambda epoch: spec.lr_gamma ** sum(epoch >= m for m in spec.lr_milestones)
    return lambda epoch: 1.0


def train(
    model: nn.Module,
    data: DataSplits | BatchSource,
    spec: TrainSpec,
    *,
    seed: int,
    callbacks: Sequence[Callback] = (),
    stage: str = "train",
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    first_epoch: int = 0,
    data_path: DataPath = "auto",
    step_losses: list[float] | None = None,
) -> TrainLog:
    """Train ``model`` in place on ``data`` under ``spec``; validate after each epoch.

    ``data``: a classifier's splits (batches of ``data.train_*``, validation on ``data.val_*``)
    or any other :class:`BatchSource` (a language model's token batches); ``loss_fn`` takes the
    model's output and the batch's targets (default: cross-entropy with the recipe's label smoothing). ``first_epoch`` > 0 runs only epochs
    ``first_epoch``..``spec.epochs - 1`` of the recipe, with their learning rates: the rest of a
    schedule, as LR and weight rewinding need. ``data_path``: where a classifier's batches are
    cut and augmented (:func:`resolve_data_path`); the same batches on every path.
    ``step_losses``: where given, each step's loss is appended to it (read once per epoch).

    Raises :class:`TrainingDiverged` when an epoch's loss, or its validation loss, is NaN or infinite.
    """
    source = SplitBatches(data, data_path) if isinstance(data, DataSplits) else data
    if loss_fn is None:
        smoothing = spec.label_smoothing
        loss_fn = F.cross_entropy if smoothing == 0 else lambda out, y: F.cross_entropy(out, y, label_smoothing=smoothing)
    elif spec.label_smoothing:
        raise ValueError(f"{stage}: label_smoothing applies to the classifiers' cross-entropy, not to a given loss")
    # A callback that can hand the optimizer a mask gets the SGD that can take one.
    maskable = any(callback.hands_mask_to_optimizer for callback in callbacks)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], spec, maskable=maskable)
    step = TrainingStep(model, optimizer, spec, loss_fn, source.device)
    factor = lr_factor(spec)
    steps = source.steps(spec)
    per_step = onecycle(optimizer, spec, steps, first_epoch) if spec.lr_schedule == "onecycle" else None
    average = WeightAverage(model, spec.ema_decay) if spec.ema_decay is not None else None
    generator = torch.Generator().manual_seed(seed)
    record = TrainLog()
    for callback in callbacks:
        callback.on_optimizer(optimizer)
    for callback in callbacks:
        callback.on_train_start()
    for epoch in range(first_epoch, spec.epochs):
        if per_step is None:
            for group in optimizer.param_groups:
                group["lr"] = spec.lr * factor(epoch)
        lr = float(optimizer.param_groups[0]["lr"])  # the epoch's first step's LR
        model.train()
        loss_sum = torch.zeros((), device=source.device)
        losses: list[torch.Tensor] = []
        progress = EpochProgress(f"{stage} epoch {epoch + 1}/{spec.epochs}", steps)
        seen = 0
        for done, (inputs, targets) in enumerate(source.epoch(spec, generator, steps), start=1):
            loss = step(inputs, targets)
            record.steps += 1
            for callback in callbacks:
                callback.on_step_end(record.steps)
            if per_step is not None:
                per_step.step()
            if average is not None:  # after the callbacks: it averages the weights they left (masked)
                average.update()
            loss_sum += loss.detach() * targets.shape[0]
            if step_losses is not None:
                losses.append(loss.detach())
            seen += targets.shape[0]
            progress.step(done, seen, loss_sum)
        if step_losses is not None and losses:  # one read of the device per epoch, not one per step
            step_losses.extend(torch.stack(losses).tolist())
        train_loss = float(loss_sum) / source.examples(spec)  # the mean over the examples it saw
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"{stage}: loss became {train_loss} in epoch {epoch + 1}")
        val = source.validate(model)
        if val is not None and not math.isfinite(val.loss):  # a finite training loss of 1e30 can hide it
            raise TrainingDiverged(f"{stage}: validation loss became {val.loss} in epoch {epoch + 1} "
                                   f"(training loss {train_loss:.3g})")
        record.epochs.append(
            EpochRecord(epoch + 1, lr, train_loss, val.top1 if val else None, val.loss if val else None)
        )
        log.info(
            "%s epoch %d/%d  lr %.4g  loss %.4f%s", stage, epoch + 1, spec.epochs, lr, train_loss,
            f"  val top-1 {val.top1:.2%}" if val else "",
        )
    step.finish()
    if average is not None:
        average.copy_into_model()
    return record
