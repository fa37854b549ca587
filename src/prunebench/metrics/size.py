"""Parameter counts, sparsity and compression ratio (one definition each; see docs/metrics.md).

Sparsity = pruned / prunable parameters.
Compression ratio = total parameters / nonzero parameters, over every parameter of the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SizeMetrics:
    params_total: int
    params_nonzero: int
    prunable_total: int
    prunable_nonzero: int
    layer_sparsity: dict[str, float]  # per prunable parameter: zeros / entries

    @property
    def compression_ratio(self) -> float:
        return self.params_total / max(self.params_nonzero, 1)

    @property
    def prunable_compression_ratio(self) -> float:
        return self.prunable_total / max(self.prunable_nonzero, 1)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.prunable_nonzero / self.prunable_total if self.prunable_total else 0.0


def nonzero(tensor: torch.Tensor) -> int:
    return int(torch.count_nonzero(tensor))


def size_metrics(model: nn.Module, prunable: Iterable[str]) -> SizeMetrics:
    """Counts of the weights as they are: a pruned entry is one that is exactly zero."""
    prunable = set(prunable)
    params = dict(model.named_parameters())
    unknown = prunable - set(params)
    if unknown:
        raise ValueError(f"not parameters of the model: {sorted(unknown)}")
    layer = {name: 1.0 - nonzero(params[name]) / params[name].numel() for name in params if name in prunable}
    return SizeMetrics(
        params_total=sum(p.numel() for p in params.values()),
        params_nonzero=sum(nonzero(p) for p in params.values()),
        prunable_total=sum(params[n].numel() for n in prunable),
        prunable_nonzero=sum(nonzero(params[n]) for n in prunable),
        layer_sparsity=layer,
    )


def unprunable_nonzero(model: nn.Module, prunable: Iterable[str]) -> int:
    prunable = set(prunable)
    return sum(nonzero(p) for name, p in model.named_parameters() if name not in prunable)
