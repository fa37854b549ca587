"""Two per-step pieces of a training recipe: the onecycle learning rate and the weights' moving average.

Both come from torch (``OneCycleLR``, ``AveragedModel`` with its EMA update), so their definitions
are torch's. A masked model keeps its mask through both: the average of weights that are exactly
zero after every step is exactly zero, and the onecycle schedule only sets the LR.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from prunebench.spec import TrainSpec

ONECYCLE_DIV = 25.0  # torch's div_factor: the first step's LR is lr / 25
ONECYCLE_FINAL_DIV = 1e4  # torch's final_div_factor: the last step's LR is lr / 25 / 1e4


def onecycle(optimizer: torch.optim.Optimizer, spec: TrainSpec, steps_per_epoch: int, first_epoch: int) -> OneCycleLR:
    """The onecycle schedule over the recipe's steps, advanced to ``first_epoch`` (rewinding).

    Momentum is left as the recipe sets it (``cycle_momentum`` off): one knob changes at a time."""
    schedule = OneCycleLR(
        optimizer, max_lr=spec.lr, total_steps=max(spec.epochs * steps_per_epoch, 1),
        pct_start=spec.warmup_fraction, anneal_strategy="linear", cycle_momentum=False,
        div_factor=ONECYCLE_DIV, final_div_factor=ONECYCLE_FINAL_DIV,
    )
    with warnings.catch_warnings():  # stepping the schedule before any optimizer step is the point here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(first_epoch * steps_per_epoch):
            schedule.step()
    return schedule


class WeightAverage:
    """An exponential moving average of a model's parameters and buffers (``ema_decay`` per step)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = model
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def update(self) -> None:
        self.average.update_parameters(self.model)

    def copy_into_model(self) -> None:
        """The model takes the averaged values, into its own tensors (optimizers and masks still
        hold them). A parameter exactly zero at the end stays zero: under a mask that shrank while
        training (gradual pruning), the average of a weight pruned late is not zero, and the mask
        the run ends with is the one that counts."""
        with torch.no_grad():
            for param, averaged in zip(self.model.parameters(), self.average.module.parameters(), strict=True):
                param.copy_(torch.where(param == 0, torch.zeros_like(averaged), averaged))
            for buffer, averaged_buffer in zip(self.model.buffers(), self.average.module.buffers(), strict=True):
                buffer.copy_(averaged_buffer)
