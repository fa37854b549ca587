"""The layer-allocation contract and its registry (language models).

An allocation spreads a language model's target sparsity over its decoder blocks. It is a class
registered by ``name`` (:data:`ALLOCATIONS`); ``prune.allocation`` names one, and an instance
with its default hyperparameters is what :func:`parse_allocation` returns. It says what it
needs (the dense model's Wanda scores per block, which cost one calibration pass), which targets
and scopes it can serve (:meth:`Allocation.check`), and the sparsity of every block
(:meth:`Allocation.sparsities`). The layer-wise driver (:mod:`prunebench.pruning.layerwise`) asks
it; a new allocation is one module plus one registration line (:mod:`.`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, TypeVar

import torch

from prunebench.errors import ConfigError
from prunebench.registry import Registry

# The dense model's Wanda scores |W| ||X||_2 of every Linear of each decoder block, block by
# block; calling it runs the calibration pass, so an allocation that needs none never calls it.
BlockScores = Callable[[], Iterable[Sequence[torch.Tensor]]]


class Allocation(ABC):
    """One registered allocation; a subclass is a frozen dataclass of its hyperparameters."""

    name: ClassVar[str]  # the registry key: what prune.allocation says
    citation: ClassVar[str] = ""  # where the method is described
    needs_scores: ClassVar[bool] = False  # whether it reads the dense model's block scores
    per_block: ClassVar[bool] = False  # whether blocks get different sparsities

    def check(self, *, fixed_sparsity: bool, scope: str) -> None:
        """ConfigError unless it can serve the target: a sparsity per block needs a sparsity the
        structure does not fix (N:M is the same in every layer) and a scope within a layer."""
        if self.per_block and (fixed_sparsity or scope == "global"):
            raise ConfigError(
                f"prune.allocation {self.name!r} sets a sparsity per block: it needs an unstructured target "
                "and scope row or layer (N:M is the same in every layer)"
            )

    @abstractmethod
    def sparsities(self, sparsity: float | None, blocks: int, scores: BlockScores) -> list[float | None]:
        """The sparsity of each of ``blocks`` decoder blocks for the overall ``sparsity`` (None
        where the structure fixes it); their mean over blocks is ``sparsity``."""


ALLOCATIONS: Registry[type[Allocation]] = Registry("allocation")
A = TypeVar("A", bound=type[Allocation])


def register(cls: A) -> A:
    """Class decorator: register an allocation under its ``name``."""
    ALLOCATIONS.add(cls.name, cls)
    return cls


def parse_allocation(name: str) -> Allocation:
    """The allocation ``prune.allocation`` names, with its default hyperparameters."""
    try:
        return ALLOCATIONS.get(name)()
    except ConfigError as error:
        raise ConfigError(f"prune.allocation: {error}") from None
