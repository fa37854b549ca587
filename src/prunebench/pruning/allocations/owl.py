"""``owl``: Outlier Weighed Layerwise sparsity (Yin et al. 2024, "Outlier Weighed Layerwise
Sparsity (OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity").

A block's outlier ratio ``D_l`` is the fraction of its Wanda scores ``|W| ||X||_2`` (on the dense
model) above ``M`` times their mean (``M = 5``); the ratios are mapped linearly onto a range of
width ``2 lambda`` (``lambda = 0.08``) and the block sparsity is ``s - (r_l - mean r)``: more
outliers, more density, the mean sparsity held at ``s`` (the authors' code; the paper's interval
``[s - lambda, s + lambda]`` centred on the mean rather than its midpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.allocations.base import Allocation, BlockScores, register

OWL_M = 5.0  # Yin et al. 2024: a score is an outlier above M times its block's mean
OWL_LAMBDA = 0.08  # Yin et al. 2024: half the width of the range of block sparsities


def owl_sparsities(ratios: Sequence[float], sparsity: float, lam: float = OWL_LAMBDA) -> list[float]:
    """Block sparsities from outlier ratios (Yin et al. 2024): mapped linearly onto a range of
    width ``2 lam``, more outliers less sparse, mean ``sparsity``."""
    r = torch.tensor(ratios, dtype=torch.float64)
    spread = r.max() - r.min()
    scaled = (r - r.min()) / spread * (2 * lam) if spread > 0 else torch.zeros_like(r)
    values = sparsity - (scaled - scaled.mean())
    if bool((values < 0).any() or (values >= 1).any()):
        raise ConfigError(
            f"allocation 'owl': sparsity {sparsity} +- {lam} leaves [0, 1) for some block; "
            "use a sparsity further from 0 and 1 or allocation 'uniform'"
        )
    return values.tolist()


def outlier_ratio(scores: Sequence[torch.Tensor], m: float = OWL_M) -> float:
    """The fraction of a block's scores above ``m`` times their mean."""
    flat = torch.cat([s.flatten() for s in scores])
    return float((flat > m * flat.mean()).to(torch.float64).mean())


@register
@dataclass(frozen=True)
class Owl(Allocation):
    m: float = OWL_M
    lam: float = OWL_LAMBDA

    name: ClassVar[str] = "owl"
    citation: ClassVar[str] = "Yin et al. 2024"
    needs_scores: ClassVar[bool] = True
    per_block: ClassVar[bool] = True

    def sparsities(self, sparsity: float | None, blocks: int, scores: BlockScores) -> list[float | None]:
        if sparsity is None:
            raise ConfigError("prune.allocation 'owl' spreads an unstructured sparsity: give prune.sparsity")
        ratios = [outlier_ratio(block, self.m) for block in scores()]
        return list(owl_sparsities(ratios, sparsity, self.lam))
