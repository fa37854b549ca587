"""``unstructured`` (the default): any entry may be pruned on its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import Scope, select
from prunebench.pruning.structures.base import Structure, WeightStructure, register


@register
@dataclass(frozen=True)
class Unstructured(WeightStructure):
    kind: ClassVar[str] = "unstructured"
    spelling: ClassVar[str] = "'unstructured'"
    example: ClassVar[str] = "unstructured"
    language_model: ClassVar[bool] = True
    any_mask: ClassVar[bool] = True

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        return cls() if text == cls.kind else None

    def select(
        self, scores: Mapping[str, torch.Tensor], keep: int, scope: Scope = "global",
        previous: Mask | None = None, *, seed: int = 0,
    ) -> Mask:
        return select(scores, keep, scope, previous, seed=seed)
