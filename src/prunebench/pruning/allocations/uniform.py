"""``uniform``: every decoder block pruned to the target sparsity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from prunebench.pruning.allocations.base import Allocation, BlockScores, register


@register
@dataclass(frozen=True)
class Uniform(Allocation):
    name: ClassVar[str] = "uniform"

    def sparsities(self, sparsity: float | None, blocks: int, scores: BlockScores) -> list[float | None]:
        return [sparsity] * blocks
