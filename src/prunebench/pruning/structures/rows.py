"""``rows``: whole output rows of a weight kept or pruned together, an output-neuron structure
for weight scores (every input weight of a neuron, or every weight of a filter).

A row's score is the sum of its entries' scores (for magnitude: the row's L1 norm), ranked by
the usual selection. The target is counted in rows: a target of ``keep`` entries keeps
``round(keep * rows / entries)`` rows, the same fraction of the rows as of the entries, exactly
(so the entries kept match the target exactly only where every row has the same length). Scope
``layer`` gives each tensor its share of that count by its number of rows; scope ``global``
ranks rows of different lengths by their sums, so longer rows tend to stay. Unlike ``channel``,
nothing coupled to a row is pruned with it (the next layer's inputs, a bias, batch norm).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import Scope, select
from prunebench.pruning.structures.base import Shapes, Structure, WeightStructure, register


@register
@dataclass(frozen=True)
class Rows(WeightStructure):
    kind: ClassVar[str] = "rows"
    spelling: ClassVar[str] = "'rows'"
    example: ClassVar[str] = "rows"

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        return cls() if text == cls.kind else None

    def check_shapes(self, shapes: Shapes) -> None:
        for name, shape in shapes.items():
            if len(shape) < 2:
                raise ConfigError(
                    f"prune.structure rows applies to weights with an input dimension; {name} has shape "
                    f"{tuple(shape)} (set prune.prunable.include_bias false)"
                )

    @staticmethod
    def view(tensor: torch.Tensor) -> torch.Tensor:
        """(out, in, *kernel) -> (out, in * kernel): one row per output."""
        return tensor.reshape(tensor.shape[0], -1)

    def select(
        self, scores: Mapping[str, torch.Tensor], keep: int, scope: Scope = "global",
        previous: Mask | None = None, *, seed: int = 0,
    ) -> Mask:
        """Keep :meth:`units_to_keep` whole rows, ranked by the sum of their scores. A row a
        previous mask pruned entirely stays pruned, and the result is ANDed with that mask."""
        shapes = {name: s.shape for name, s in scores.items()}
        self.check_shapes(shapes)
        row_scores = {name: self.view(s.detach().float()).sum(dim=1) for name, s in scores.items()}
        previous_rows = None if previous is None else Mask({n: self.view(previous[n]).any(dim=1) for n in scores})
        rows = select(row_scores, self.units_to_keep(shapes, keep), scope, previous_rows, seed=seed)
        masks = {}
        for name, score in scores.items():
            masks[name] = rows[name].unsqueeze(1).expand_as(self.view(score)).reshape(score.shape).clone()
            if previous is not None:
                masks[name] &= previous[name]
        return Mask(masks)

    def violations(self, mask: Mask) -> list[str]:
        problems = []
        for name, keep in mask.items():
            rows = self.view(keep)
            bad = int((rows.any(dim=1) & ~rows.all(dim=1)).sum())
            if bad:
                problems.append(f"{name}: {bad} rows are partly kept")
        return problems

    def kept_units(self, mask: Mask) -> int:
        return sum(int(self.view(keep).all(dim=1).sum()) for keep in mask.values())

    def units_to_keep(self, shapes: Shapes, keep: int) -> int:
        rows = sum(shape[0] for shape in shapes.values())
        entries = sum(shape.numel() for shape in shapes.values())
        return round(keep * rows / entries)
