"""Structures: how scores become a mask, one registered class per structure.

``prune.structure`` is a string, so it fits a YAML config and a ``key=value`` override; it
parses to an instance of one registered class (:func:`parse_structure`):

- ``unstructured`` (default): any entry may be pruned (:mod:`.unstructured`).
- ``N:M`` (e.g. ``"2:4"``): exactly N of every M consecutive inputs kept (:mod:`.nm`).
- ``block:RxC`` (e.g. ``"block:4x4"``): R x C blocks kept or pruned whole (:mod:`.block`).
- ``rows``: whole output rows of a weight kept or pruned, scored by their sums (:mod:`.rows`).
- ``channel``: whole channels, removed with everything coupled to them, scored by channel
  strategies (:mod:`.channel`, selected by :mod:`prunebench.pruning.channels`).
- ``mlp_channels``, ``attention_heads``, ``width``: whole MLP channels and key/value groups of a
  language model's decoder blocks, scored by width strategies (:mod:`.lm_width`, selected and
  removed by :mod:`prunebench.pruning.width`).
- ``depth``: whole decoder blocks of a language model, chosen by depth strategies (:mod:`.lm_depth`,
  removed by :mod:`prunebench.pruning.depth`).

Any weight strategy works with any weight structure: the structure only changes how scores
become a mask. The contract is :class:`~.base.Structure` (:mod:`.base`). A new structure is one
module with a ``@register``-ed class plus its import line below; the contract tests
(tests/test_structure_contract.py, tests/test_strategy_contract.py) run every registered one.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import Scope
from prunebench.pruning.structures.base import (
    STRUCTURES, PruneTargets, Structure, WeightStructure, language_model_structures, parse_structure, register,
    registered, spellings, structures_scoring,
)

# The built-in structures: importing a module registers its class.
from prunebench.pruning.structures import unstructured as unstructured  # noqa: E402
from prunebench.pruning.structures import nm as nm  # noqa: E402
from prunebench.pruning.structures import block as block  # noqa: E402
from prunebench.pruning.structures import channel as channel  # noqa: E402
from prunebench.pruning.structures import rows as rows  # noqa: E402
from prunebench.pruning.structures import lm_width as lm_width  # noqa: E402
from prunebench.pruning.structures import lm_depth as lm_depth  # noqa: E402

from prunebench.pruning.structures.block import Block, select_blocks  # noqa: E402
from prunebench.pruning.structures.channel import Channel  # noqa: E402
from prunebench.pruning.structures.nm import NM, select_nm  # noqa: E402
from prunebench.pruning.structures.unstructured import Unstructured  # noqa: E402

UNSTRUCTURED = Unstructured.kind
CHANNEL = Channel.kind  # whole channels (filters), removed with everything coupled to them


def select_structured(
    scores: Mapping[str, torch.Tensor],
    keep: int,
    structure: WeightStructure,
    scope: Scope = "global",
    previous: Mask | None = None,
    *,
    seed: int = 0,
) -> Mask:
    """``structure``'s selection (:meth:`WeightStructure.select`). ``seed`` (the run's) draws
    which of the scores tied at the keep boundary are pruned."""
    return structure.select(scores, keep, scope, previous, seed=seed)


def structure_violations(mask: Mask, structure: WeightStructure) -> list[str]:
    """Every place where ``mask`` breaks ``structure`` (empty when it is exact)."""
    return structure.violations(mask)


def check_structure(mask: Mask, structure: WeightStructure) -> None:
    """Raise ValueError unless ``mask`` has exactly the structure it was selected with."""
    problems = structure.violations(mask)
    if problems:
        raise ValueError(f"mask breaks structure: {'; '.join(problems)}")


def random_control(structure: str) -> str:
    """The random control of ``prune.structure`` ``structure`` (:attr:`Structure.random_control`)."""
    return parse_structure(structure).random_control


def random_controls() -> frozenset[str]:
    """Every strategy that is some structure's random control."""
    return frozenset(cls.random_control for cls in registered())


__all__ = [
    "CHANNEL", "NM", "STRUCTURES", "UNSTRUCTURED", "Block", "Channel", "PruneTargets", "Structure", "Unstructured",
    "WeightStructure", "check_structure", "language_model_structures", "parse_structure", "random_control",
    "random_controls", "register", "registered", "select_blocks", "select_nm", "select_structured", "spellings",
    "structure_violations", "structures_scoring",
]
