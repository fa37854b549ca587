"""Multiply-accumulates (MACs), counted by ``torch.utils.flop_counter`` per module.

MACs = multiply-accumulates of one example's forward pass; FLOPs = 2 x MACs. Effective MACs
count only nonzero weights: a Linear or convolution uses each weight the same number of times
per example, so its effective MACs are its dense MACs times its weight density.
Theoretical speedup = dense MACs / effective MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunebench.modes import eval_mode


@dataclass(frozen=True)
class MacMetrics:
    dense: dict[str, int]  # leaf module name -> MACs of one example
    effective: dict[str, int]

    @property
    def dense_total(self) -> int:
        return sum(self.dense.values())

    @property
    def effective_total(self) -> int:
        return sum(self.effective.values())

    @property
    def theoretical_speedup(self) -> float:
        return self.dense_total / max(self.effective_total, 1)


def dense_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs of one example per module that performs them (pooling, ReLU etc. count 0)."""
    device = next(model.parameters()).device
    with eval_mode(model), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *input_shape, device=device))
    root = type(model).__name__
    inclusive = {
        ("" if scope == root else scope.removeprefix(root + ".")): int(sum(ops.values())) // 2
        for scope, ops in counter.get_flop_counts().items()
        if scope != "Global"
    }
    # Attribute to each module only its own work (inclusive minus its children's), so that
    # MACs done in a parent's forward (a functional matmul, say) are counted, never twice.
    macs: dict[str, int] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        children = sum(inclusive.get(prefix + child, 0) for child, _ in module.named_children())
        own = inclusive.get(name, 0) - children
        if own > 0:
            macs[name] = own
    return macs


def mac_metrics(model: nn.Module, input_shape: tuple[int, ...]) -> MacMetrics:
    """Dense and effective MACs of ``model`` as its weights are now (zeros = pruned)."""
    dense = dense_macs(model, input_shape)
    effective = {}
    for name, macs in dense.items():
        weight = getattr(model.get_submodule(name), "weight", None)
        density = float(torch.count_nonzero(weight)) / weight.numel() if isinstance(weight, torch.Tensor) else 1.0
        effective[name] = round(macs * density)
    return MacMetrics(dense=dense, effective=effective)
