"""Keeping pruned weights at exactly zero while a model trains, whatever the optimizer.

The mask is re-applied to the weights after every optimizer step. Momentum, Adam moments and
weight decay may move a pruned weight during the step, but never past the step's end, so the
guarantee does not depend on the optimizer. The model stays a plain ``nn.Module``: no
re-parametrization, no hooks, the usual state_dict keys.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.pruning.mask import Mask


class KeepPruned:
    """Training callback: zero pruned entries at the start and after every optimizer step."""

    def __init__(self, model: nn.Module, mask: Mask) -> None:
        mask.validate_for(model)
        params = dict(model.named_parameters())
        self.params = [params[name] for name in mask]
        # float masks: one fused multiply per tensor is cheaper than masked_fill on bools
        self.multipliers = [mask[name].to(params[name].device, params[name].dtype) for name in mask]

    @torch.no_grad()
    def apply(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.multipliers)

    def on_train_start(self) -> None:
        self.apply()

    def on_step_end(self, step: int) -> None:
        self.apply()
