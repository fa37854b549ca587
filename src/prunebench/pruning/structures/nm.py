"""``N:M`` (e.g. ``"2:4"``): in every group of M consecutive weights along the input dimension
exactly N are kept (for convolutions the groups run along the input channels at each kernel
position, as sparse tensor cores expect). The sparsity is fixed at 1 - N/M, and an earlier mask
cannot be refined (its groups would keep fewer than N)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import Scope, prune_lowest_per_row, tie_generator
from prunebench.pruning.structures.base import Shapes, Structure, WeightStructure, register

_NM = re.compile(r"^(\d+):(\d+)$")


def input_last(tensor: torch.Tensor) -> torch.Tensor:
    """(out, in, *kernel) -> (out, *kernel, in): input channels become the fastest dimension."""
    return tensor.movedim(1, -1)


@register
@dataclass(frozen=True)
class NM(WeightStructure):
    n: int  # kept per group
    m: int  # group size

    kind: ClassVar[str] = "nm"
    spelling: ClassVar[str] = "'N:M' (e.g. '2:4')"
    example: ClassVar[str] = "2:4"
    target_kinds: ClassVar[tuple[str, ...]] = ()  # N of every M fixes the sparsity at 1 - N/M
    refines_masks: ClassVar[bool] = False
    language_model: ClassVar[bool] = True

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        match = _NM.match(text)
        if match is None:
            return None
        n, m = int(match[1]), int(match[2])
        if not 0 < n < m:
            raise ConfigError(f"prune.structure {text!r}: N:M needs 0 < N < M")
        return cls(n, m)

    @property
    def text(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def label(self) -> str:
        return "N:M"

    @property
    def fixed_sparsity(self) -> float | None:
        return 1 - self.n / self.m

    def layer_pattern(self) -> tuple[int, int] | None:
        return self.n, self.m

    def refuse_target(self, kind: str) -> str:
        if kind == "compression":
            return "prune.structure N:M fixes the sparsity at 1 - N/M: leave prune.compression out"
        return super().refuse_target(kind)

    def check_shapes(self, shapes: Shapes) -> None:
        for name, shape in shapes.items():
            if len(shape) < 2:
                raise ConfigError(
                    f"prune.structure {self.text} applies to weights with an input "
                    f"dimension; {name} has shape {tuple(shape)} (set prune.prunable.include_bias false)"
                )
            if shape[1] % self.m:
                raise ConfigError(
                    f"prune.structure {self.text}: {name} has {shape[1]} inputs, not a "
                    f"multiple of {self.m} (exclude it with prune.prunable.exclude)"
                )

    def keep_count(self, shapes: Shapes, for_target: Callable[[], int]) -> int:
        return sum(math.prod(shape) // self.m * self.n for shape in shapes.values())

    def select(
        self, scores: Mapping[str, torch.Tensor], keep: int, scope: Scope = "global",
        previous: Mask | None = None, *, seed: int = 0,
    ) -> Mask:
        """The N highest scores of every group (``keep`` and ``scope`` play no part)."""
        if previous is not None and previous.pruned:
            raise ConfigError("prune.structure N:M cannot refine an earlier mask (use a one-shot or at-init schedule)")
        return select_nm(scores, self, seed=seed)

    def violations(self, mask: Mask) -> list[str]:
        problems = []
        for name, keep in mask.items():
            counts = input_last(keep).reshape(-1, self.m).sum(dim=1)
            bad = int((counts != self.n).sum())
            if bad:
                problems.append(f"{name}: {bad} groups of {self.m} do not keep exactly {self.n}")
        return problems


def select_nm(scores: Mapping[str, torch.Tensor], structure: NM, *, seed: int = 0) -> Mask:
    """Keep the N highest scores of every group of M inputs; a tie at a group's boundary is
    drawn at random (one generator per tensor, from ``seed`` and its name)."""
    structure.check_shapes({name: s.shape for name, s in scores.items()})
    masks = {}
    for name, score in scores.items():
        moved = input_last(score.detach().float())
        groups = moved.reshape(-1, structure.m)
        pruned = prune_lowest_per_row(groups, structure.m - structure.n, tie_generator(seed, name))
        masks[name] = pruned.logical_not_().reshape(moved.shape).movedim(-1, 1).contiguous()
    return Mask(masks)
