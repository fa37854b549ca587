"""Structured selection for weight scores: N:M groups and blocks, with exact structure checks.

A structure is written as a string, so it fits a YAML config and a ``key=value`` override:

- ``unstructured`` (default): any entry may be pruned.
- ``N:M`` (e.g. ``"2:4"``): in every group of M consecutive weights along the input dimension
  exactly N are kept (for convolutions the groups run along the input channels at each kernel
  position, as sparse tensor cores expect). The sparsity is fixed at 1 - N/M.
- ``block:RxC`` (e.g. ``"block:4x4"``): the weight, viewed as (out, in * kernel), is tiled into
  R x C blocks that are kept or pruned whole. Block scores are the sums of their entries' scores
  (for magnitude: the block's L1 norm), ranked by the usual selection.

- ``channel``: whole channels (filters), removed with everything coupled to them
  (:mod:`prunebench.pruning.channels`), scored by channel strategies.

Any weight strategy works with any weight structure: the structure only changes how scores
become a mask. A :class:`Structure` owns its rules: the target kinds it accepts, the
schedules it can follow and its random control. Ties are broken as
:mod:`prunebench.pruning.select` says, by the run's seed, in every structure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from prunebench.errors import ConfigError, either
from prunebench.pruning.mask import Mask
from prunebench.pruning.select import Scope, prune_lowest_per_row, select, tie_generator
from prunebench.target import CLASSIFIER_TARGET_KEYS

UNSTRUCTURED = "unstructured"
CHANNEL = "channel"  # whole channels (filters), removed with everything coupled to them
_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^block:(\d+)x(\d+)$")
ALLOWED = "'unstructured', 'N:M' (e.g. '2:4'), 'block:RxC' (e.g. 'block:4x4') or 'channel'"
TARGET_KINDS = CLASSIFIER_TARGET_KEYS  # the prune.* keys that set a target (prunebench.target)


class PruneTargets(Protocol):
    """What a structure reads of the ``prune:`` settings to check them."""

    @property
    def structure(self) -> str: ...
    @property
    def schedule(self) -> str: ...
    @property
    def compression(self) -> float | None: ...
    @property
    def speedup(self) -> float | None: ...
    @property
    def channel_fraction(self) -> float | None: ...


@dataclass(frozen=True)
class Structure:
    kind: Literal["unstructured", "nm", "block", "channel"]
    n: int = 0  # N:M: kept per group
    m: int = 0  # N:M: group size
    rows: int = 0  # block height (output dimension)
    cols: int = 0  # block width (flattened input dimension)

    @property
    def block_size(self) -> int:
        return self.rows * self.cols

    @property
    def text(self) -> str:
        """How ``prune.structure`` spells it."""
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.rows}x{self.cols}"
        return self.kind

    @property
    def target_kinds(self) -> tuple[str, ...]:
        """The ``prune.*`` targets it accepts. N:M accepts none: N of every M fixes the
        sparsity at 1 - N/M. Channels reach a compression, a speedup or a channel fraction."""
        if self.kind == "nm":
            return ()
        return TARGET_KINDS if self.kind == CHANNEL else ("compression",)

    @property
    def random_control(self) -> str:
        """The strategy that prunes at random under this structure: the baseline every method
        of it must beat. Channels are chosen by ``random_channel``; weights, N:M groups and
        blocks by ``random`` (random scores summed over a group stay random)."""
        return "random_channel" if self.kind == CHANNEL else "random"

    def accepts_schedule(self, schedule: Any) -> bool:
        """N:M cannot refine an earlier mask; channel pruning runs one-shot."""
        if self.kind == "nm":
            return not schedule.refines_masks
        return schedule.name == "one-shot" if self.kind == CHANNEL else True

    def validate(self, prune: PruneTargets, schedules: Mapping[str, Any]) -> None:
        """Raise ValueError unless ``prune``'s target and schedule suit this structure.
        ``schedules`` maps every registered schedule name to its rules object."""
        given = [kind for kind in TARGET_KINDS if getattr(prune, kind) is not None]
        if len(given) > 1:
            raise ValueError("prune.compression, prune.speedup and prune.channel_fraction each set the target: give one")
        for kind in given:
            if kind not in self.target_kinds:
                if self.kind == "nm" and kind == "compression":
                    raise ValueError("prune.structure N:M fixes the sparsity at 1 - N/M: leave prune.compression out")
                raise ValueError(f"prune.{kind} is a channel-pruning target: it needs prune.structure 'channel'")
        if not self.accepts_schedule(schedules[prune.schedule]):
            fitting = [name for name, rules in schedules.items() if self.accepts_schedule(rules)]
            label = "N:M" if self.kind == "nm" else repr(self.text)
            raise ValueError(f"prune.structure {label} needs prune.schedule {either(fitting)}, not {prune.schedule!r}")



def parse_structure(text: str) -> Structure:
    """``"2:4"`` -> N:M, ``"block:4x4"`` -> blocks; anything else raises ConfigError."""
    if text in (UNSTRUCTURED, CHANNEL):
        return Structure(text)  # type: ignore[arg-type]
    if match := _NM.match(text):
        n, m = int(match[1]), int(match[2])
        if not 0 < n < m:
            raise ConfigError(f"prune.structure {text!r}: N:M needs 0 < N < M")
        return Structure("nm", n=n, m=m)
    if match := _BLOCK.match(text):
        rows, cols = int(match[1]), int(match[2])
        if rows < 1 or cols < 1 or rows * cols < 2:
            raise ConfigError(f"prune.structure {text!r}: a block needs at least 2 entries")
        return Structure("block", rows=rows, cols=cols)
    raise ConfigError(f"prune.structure: must be {ALLOWED}, got {text!r}")


def _input_last(tensor: torch.Tensor) -> torch.Tensor:
    """(out, in, *kernel) -> (out, *kernel, in): input channels become the fastest dimension."""
    return tensor.movedim(1, -1)


def _check_nm_shape(name: str, shape: torch.Size, structure: Structure) -> None:
    if len(shape) < 2:
        raise ConfigError(
            f"prune.structure {structure.n}:{structure.m} applies to weights with an input "
            f"dimension; {name} has shape {tuple(shape)} (set prune.prunable.include_bias false)"
        )
    if shape[1] % structure.m:
        raise ConfigError(
            f"prune.structure {structure.n}:{structure.m}: {name} has {shape[1]} inputs, not a "
            f"multiple of {structure.m} (exclude it with prune.prunable.exclude)"
        )


def _check_block_shape(name: str, shape: torch.Size, structure: Structure) -> tuple[int, int]:
    if len(shape) < 2:
        raise ConfigError(
            f"prune.structure block:{structure.rows}x{structure.cols} applies to weights with an "
            f"input dimension; {name} has shape {tuple(shape)} (set prune.prunable.include_bias false)"
        )
    out, cols = shape[0], math.prod(shape[1:])
    if out % structure.rows or cols % structure.cols:
        raise ConfigError(
            f"prune.structure block:{structure.rows}x{structure.cols}: {name} viewed as "
            f"({out}, {cols}) does not tile into such blocks (exclude it with prune.prunable.exclude)"
        )
    return out, cols


def check_shapes(shapes: Mapping[str, torch.Size], structure: Structure) -> None:
    """Raise ConfigError unless every parameter can carry ``structure`` exactly."""
    for name, shape in shapes.items():
        if structure.kind == "nm":
            _check_nm_shape(name, shape, structure)
        elif structure.kind == "block":
            _check_block_shape(name, shape, structure)


def nm_keep_count(shapes: Mapping[str, torch.Size], structure: Structure) -> int:
    return sum(math.prod(shape) // structure.m * structure.n for shape in shapes.values())


def select_nm(scores: Mapping[str, torch.Tensor], structure: Structure, *, seed: int = 0) -> Mask:
    """Keep the N highest scores of every group of M inputs; a tie at a group's boundary is
    drawn at random (one generator per tensor, from ``seed`` and its name)."""
    check_shapes({name: s.shape for name, s in scores.items()}, structure)
    masks = {}
    for name, score in scores.items():
        moved = _input_last(score.detach().float())
        groups = moved.reshape(-1, structure.m)
        pruned = prune_lowest_per_row(groups, structure.m - structure.n, tie_generator(seed, name))
        masks[name] = pruned.logical_not_().reshape(moved.shape).movedim(-1, 1).contiguous()
    return Mask(masks)


def _block_view(tensor: torch.Tensor, structure: Structure) -> torch.Tensor:
    """(out, in, *kernel) -> (out / R, R, cols / C, C)."""
    out = tensor.shape[0]
    flat = tensor.reshape(out, -1)
    return flat.reshape(out // structure.rows, structure.rows, -1, structure.cols)


def select_blocks(
    scores: Mapping[str, torch.Tensor],
    keep: int,
    structure: Structure,
    scope: Scope = "global",
    previous: Mask | None = None,
    *,
    seed: int = 0,
) -> Mask:
    """Keep round(keep / block size) whole blocks, ranked by the sum of their scores (ties
    drawn by ``seed`` as in :func:`~prunebench.pruning.select.select`).

    A block that a previous mask pruned entirely stays pruned; the result is ANDed with the
    previous mask, so masks still only shrink.
    """
    check_shapes({name: s.shape for name, s in scores.items()}, structure)
    block_scores = {name: _block_view(s.detach().float(), structure).sum(dim=(1, 3)) for name, s in scores.items()}
    previous_blocks = None
    if previous is not None:
        previous_blocks = Mask({name: _block_view(previous[name], structure).any(dim=3).any(dim=1) for name in scores})
    blocks = select(block_scores, round(keep / structure.block_size), scope, previous_blocks, seed=seed)
    masks = {}
    for name, score in scores.items():
        expanded = blocks[name].repeat_interleave(structure.rows, 0).repeat_interleave(structure.cols, 1)
        masks[name] = expanded.reshape(score.shape)
        if previous is not None:
            masks[name] = masks[name] & previous[name]
    return Mask(masks)


def select_structured(
    scores: Mapping[str, torch.Tensor],
    keep: int,
    structure: Structure,
    scope: Scope = "global",
    previous: Mask | None = None,
    *,
    seed: int = 0,
) -> Mask:
    """Dispatch on ``structure``; the unstructured case is :func:`~prunebench.pruning.select.select`.
    ``seed`` (the run's) draws which of the scores tied at the keep boundary are pruned."""
    if structure.kind == "nm":
        if previous is not None and previous.pruned:
            raise ConfigError("prune.structure N:M cannot refine an earlier mask (use a one-shot or at-init schedule)")
        return select_nm(scores, structure, seed=seed)
    if structure.kind == "block":
        return select_blocks(scores, keep, structure, scope, previous, seed=seed)
    return select(scores, keep, scope, previous, seed=seed)


def structure_violations(mask: Mask, structure: Structure) -> list[str]:
    """Every place where ``mask`` breaks ``structure`` (empty when it is exact)."""
    problems = []
    for name, keep in mask.items():
        if structure.kind == "nm":
            counts = _input_last(keep).reshape(-1, structure.m).sum(dim=1)
            bad = int((counts != structure.n).sum())
            if bad:
                problems.append(f"{name}: {bad} groups of {structure.m} do not keep exactly {structure.n}")
        elif structure.kind == "block":
            blocks = _block_view(keep, structure)
            full, empty = blocks.all(dim=3).all(dim=1), (~blocks).all(dim=3).all(dim=1)
            bad = int((~(full | empty)).sum())
            if bad:
                problems.append(f"{name}: {bad} blocks are partly kept")
    return problems


def check_structure(mask: Mask, structure: Structure) -> None:
    """Raise ValueError unless ``mask`` has exactly the structure it was selected with."""
    problems = structure_violations(mask, structure)
    if problems:
        raise ValueError(f"mask breaks structure: {'; '.join(problems)}")


def random_control(structure: str) -> str:
    """The random control of ``prune.structure`` ``structure`` (:attr:`Structure.random_control`)."""
    return parse_structure(structure).random_control


def random_controls() -> frozenset[str]:
    """Every strategy that is some structure's random control."""
    return frozenset({random_control(CHANNEL), random_control(UNSTRUCTURED)})
