"""``block:RxC`` (e.g. ``"block:4x4"``): the weight, viewed as (out, in * kernel), is tiled into
R x C blocks that are kept or pruned whole. Block scores are the sums of their entries' scores
(for magnitude: the block's L1 norm), ranked by the usual selection."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import Scope, select
from prunebench.pruning.structures.base import Shapes, Structure, WeightStructure, register

_BLOCK = re.compile(r"^block:(\d+)x(\d+)$")


@register
@dataclass(frozen=True)
class Block(WeightStructure):
    rows: int  # block height (output dimension)
    cols: int  # block width (flattened input dimension)

    kind: ClassVar[str] = "block"
    spelling: ClassVar[str] = "'block:RxC' (e.g. 'block:4x4')"
    example: ClassVar[str] = "block:4x4"

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        match = _BLOCK.match(text)
        if match is None:
            return None
        rows, cols = int(match[1]), int(match[2])
        if rows < 1 or cols < 1 or rows * cols < 2:
            raise ConfigError(f"prune.structure {text!r}: a block needs at least 2 entries")
        return cls(rows, cols)

    @property
    def text(self) -> str:
        return f"block:{self.rows}x{self.cols}"

    @property
    def block_size(self) -> int:
        return self.rows * self.cols

    def check_shapes(self, shapes: Shapes) -> None:
        for name, shape in shapes.items():
            if len(shape) < 2:
                raise ConfigError(
                    f"prune.structure {self.text} applies to weights with an "
                    f"input dimension; {name} has shape {tuple(shape)} (set prune.prunable.include_bias false)"
                )
            out, cols = shape[0], math.prod(shape[1:])
            if out % self.rows or cols % self.cols:
                raise ConfigError(
                    f"prune.structure {self.text}: {name} viewed as "
                    f"({out}, {cols}) does not tile into such blocks (exclude it with prune.prunable.exclude)"
                )

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        """(out, in, *kernel) -> (out / R, R, cols / C, C)."""
        out = tensor.shape[0]
        return tensor.reshape(out, -1).reshape(out // self.rows, self.rows, -1, self.cols)

    def select(
        self, scores: Mapping[str, torch.Tensor], keep: int, scope: Scope = "global",
        previous: Mask | None = None, *, seed: int = 0,
    ) -> Mask:
        """Keep round(keep / block size) whole blocks, ranked by the sum of their scores. A block
        that a previous mask pruned entirely stays pruned; the result is ANDed with the previous
        mask, so masks still only shrink."""
        self.check_shapes({name: s.shape for name, s in scores.items()})
        block_scores = {name: self.view(s.detach().float()).sum(dim=(1, 3)) for name, s in scores.items()}
        previous_blocks = None
        if previous is not None:
            previous_blocks = Mask({name: self.view(previous[name]).any(dim=3).any(dim=1) for name in scores})
        blocks = select(block_scores, round(keep / self.block_size), scope, previous_blocks, seed=seed)
        masks = {}
        for name, score in scores.items():
            expanded = blocks[name].repeat_interleave(self.rows, 0).repeat_interleave(self.cols, 1)
            masks[name] = expanded.reshape(score.shape)
            if previous is not None:
                masks[name] = masks[name] & previous[name]
        return Mask(masks)

    def violations(self, mask: Mask) -> list[str]:
        problems = []
        for name, keep in mask.items():
            blocks = self.view(keep)
            full, empty = blocks.all(dim=3).all(dim=1), (~blocks).all(dim=3).all(dim=1)
            bad = int((~(full | empty)).sum())
            if bad:
                problems.append(f"{name}: {bad} blocks are partly kept")
        return problems

    def kept_units(self, mask: Mask) -> int:
        return sum(int(self.view(keep).all(dim=3).all(dim=1).sum()) for keep in mask.values())

    def units_to_keep(self, shapes: Shapes, keep: int) -> int:
        return round(keep / self.block_size)


def select_blocks(
    scores: Mapping[str, torch.Tensor], keep: int, structure: Block, scope: Scope = "global",
    previous: Mask | None = None, *, seed: int = 0,
) -> Mask:
    """:meth:`Block.select`, as a function."""
    return structure.select(scores, keep, scope, previous, seed=seed)
