"""Keeping pruned weights at exactly zero while a model trains, whatever the optimizer.

The mask is re-applied to the weights after every optimizer step. Momentum, Adam moments and
weight decay may move a pruned weight during the step, but never past the step's end, so the
guarantee does not depend on the optimizer. The model stays a plain ``nn.Module``: no
re-parametrization, no hooks, the usual state_dict keys.

Where the training loop's optimizer can apply the mask in its own update
(:class:`prunebench.pruning.masked_sgd.MaskedSGD`, SGD on the CPU), the callback hands the mask
over in :meth:`KeepPruned.on_optimizer` and stops re-masking: the weights, momentum buffers and
results are bit for bit those of re-masking, for a third of the memory traffic.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.pruning.mask import Mask
from prunebench.pruning.masked_sgd import MaskedSGD


class KeepPruned:
    """Training callback: zero pruned entries at the start and after every optimizer step."""

    hands_mask_to_optimizer = True  # on_optimizer: a MaskedSGD takes the mask over

    def __init__(self, model: nn.Module, mask: Mask) -> None:
        mask.validate_for(model)
        params = dict(model.named_parameters())
        self.model, self.mask = model, mask
        self.params = [params[name] for name in mask]
        # float masks: one fused multiply per tensor is cheaper than masked_fill on bools
        # None once the optimizer applies the mask in its own update
        self.multipliers: list[torch.Tensor] | None = [
            mask[name].to(params[name].device, params[name].dtype) for name in mask
        ]

    @property
    def in_optimizer(self) -> bool:
        """Whether the optimizer applies the mask in its update (no re-masking after a step)."""
        return self.multipliers is None

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Called by the training loop once its optimizer exists: an optimizer that can keep the
        pruned entries at zero in its own update takes the mask, and re-masking stops."""
        if isinstance(optimizer, MaskedSGD) and optimizer.hold(
            {param: self.mask[name] for param, name in zip(self.params, self.mask)}
        ):
            self.multipliers = None  # the float masks are no longer needed

    @torch.no_grad()
    def apply(self) -> None:
        if self.multipliers is None:
            self.mask.apply(self.model)
        elif self.params:
            torch._foreach_mul_(self.params, self.multipliers)

    def on_train_start(self) -> None:
        self.apply()

    def on_step_end(self, step: int) -> None:
        if not self.in_optimizer:
            self.apply()
