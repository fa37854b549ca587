"""Depth strategies: which whole decoder blocks of a language model go (``prune.structure: depth``).

Each is a registered method (:class:`DepthMethod`) with one form, for language models under the
``depth`` structure (:mod:`prunebench.pruning.structures.lm_depth`); it picks ``n`` blocks from
what one pass of the dense model over the calibration sequences measured at the block boundaries
(:class:`BoundaryStatistics`, gathered by :mod:`prunebench.pruning.depth`).

- ``block_influence`` (ShortGPT, Men et al. 2024, arXiv:2403.03853): a block's influence is
  ``1 - cos(x_l, x_{l+1})``, its input against its output hidden state, averaged over every
  calibration token; the ``n`` blocks of lowest influence go, wherever they are (not necessarily
  consecutive). The paper calibrates on PG19 text; here the run's calibration split is used.
- ``angular_distance`` (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper
  Layers", arXiv:2403.17887): for removing ``n`` consecutive blocks, the distance between the
  input of block ``l`` and the input of block ``l + n`` is ``arccos(cos(x_l, x_{l+n})) / pi``
  at the final token of each sequence (the paper's choice), averaged over sequences; the run
  ``l .. l+n-1`` of smallest distance goes. Every start ``l`` in ``0 .. L-n`` is eligible
  (``x_L`` is the last block's output, before the final norm).
- ``random_block``: ``n`` blocks drawn with the run's seed, the control both must beat.

Blocks are compared across the whole model, so the one scope is ``global``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from prunebench.pruning.scores.base import CLASSIFIER, LANGUAGE_MODEL, Form, Method, ModelKind, register_method
from prunebench.pruning.structures import structures_scoring


@dataclasses.dataclass
class BoundaryStatistics:
    """What one pass over the calibration sequences measured at the block boundaries.

    ``cos_sum[l]`` sums cos(input, output) of block ``l`` over all ``tokens``; ``last[l]`` holds
    the final token's hidden state at boundary ``l`` (the input of block ``l``; ``last[L]`` the
    last block's output), one row per sequence."""

    cos_sum: torch.Tensor  # (L,) float64
    tokens: int
    last: list[torch.Tensor] = dataclasses.field(default_factory=list)  # L + 1 tensors of (sequences, hidden)

    @property
    def num_blocks(self) -> int:
        return int(self.cos_sum.numel())


def block_influence(stats: BoundaryStatistics) -> torch.Tensor:
    """ShortGPT's BI per block: 1 - the mean over tokens of cos(block input, block output)."""
    return 1.0 - stats.cos_sum / stats.tokens


def angular_distances(stats: BoundaryStatistics, n: int) -> torch.Tensor:
    """Gromov et al.'s distance per start ``l`` (0 .. L-n): arccos(cos(x_l, x_{l+n})) / pi at the
    final token, averaged over sequences."""
    distances = []
    for start in range(stats.num_blocks - n + 1):
        cos = nn.functional.cosine_similarity(stats.last[start].double(), stats.last[start + n].double(), dim=-1)
        distances.append((torch.arccos(cos.clamp(-1.0, 1.0)) / math.pi).mean())
    return torch.stack(distances)


def lowest_influence(stats: BoundaryStatistics | None, n: int, total: int, generator: torch.Generator) -> list[int]:
    assert stats is not None
    return sorted(torch.argsort(block_influence(stats), stable=True)[:n].tolist())


def closest_run(stats: BoundaryStatistics | None, n: int, total: int, generator: torch.Generator) -> list[int]:
    assert stats is not None
    start = int(torch.argmin(angular_distances(stats, n)))
    return list(range(start, start + n))


def random_blocks(stats: BoundaryStatistics | None, n: int, total: int, generator: torch.Generator) -> list[int]:
    return sorted(torch.randperm(total, generator=generator)[:n].tolist())


ChooseFn = Callable[[BoundaryStatistics | None, int, int, torch.Generator], list[int]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DepthMethod(Method):
    """A method whose only form picks whole decoder blocks of a language model to remove:
    ``choose(stats, n, total, generator) -> sorted block indices`` of ``total`` blocks.
    ``needs_data`` False: no calibration pass, ``stats`` is None."""

    choose: ChooseFn
    needs_data: bool = True
    unit: Literal["depth"] | None = dataclasses.field(default="depth", init=False)  # type: ignore[assignment]

    def form(self, kind: ModelKind) -> Form | None:
        if kind == CLASSIFIER:
            return None
        return Form(LANGUAGE_MODEL, "depth", "hidden_states" if self.needs_data else "nothing", training_phase=False,
                    reconstructs=False, scopes=("global",), structures=structures_scoring("depth"))


BLOCK_INFLUENCE = register_method(DepthMethod(
    name="block_influence", choose=lowest_influence,
    summary="ShortGPT (Men et al. 2024): remove the blocks of lowest 1 - cos(input, output), averaged over "
            "calibration tokens",
))
ANGULAR_DISTANCE = register_method(DepthMethod(
    name="angular_distance", choose=closest_run,
    summary="Gromov et al. 2024: remove the n consecutive blocks whose input and output are closest in angle at "
            "the final token",
))
RANDOM_BLOCK = register_method(DepthMethod(
    name="random_block", choose=random_blocks, needs_data=False,
    summary="n blocks drawn at random with the run's seed: the depth structure's random control",
))
