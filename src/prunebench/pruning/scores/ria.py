"""RIA, Relative Importance and Activations (Zhang, Bai, Lin, Zhao, Hou & Cannistraci 2024,
"Plug-and-Play: An Efficient Post-training Pruning Method for Large Language Models", ICLR):
the score of weight ``W_ij`` is its relative importance, ``|W_ij| / sum_j |W_ij|`` (within its
output row) plus ``|W_ij| / sum_i |W_ij|`` (within its input column), times the input
feature's norm to the power ``a``, ``||X_j||_2 ** a``. No weight update.

Defaults from the authors' code (biomedical-cybernetics/Relative-importance-and-activation-pruning,
``main.py`` and ``lib/prune.py``): ``a = 0.5`` (``--a``), and one threshold over the whole layer
(``--per_outneuron`` off: Wanda's per-row comparison is the option, here ``scope: row``); N:M
directly from the scores (the channel reallocation and linear sum assignment are off by
default and not part of this method). Scores need calibration data and are in each layer's own
units, so there is no global scope."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
from pydantic import Field

from prunebench.pruning.scores.base import LayerPruner, LayerStatistics, Method, register_method


@dataclasses.dataclass(frozen=True)
class RIAOptions:
    a: Annotated[float, Field(ge=0)] = 0.5  # the exponent of the input feature norm


def _relative(magnitude: torch.Tensor, dim: int) -> torch.Tensor:
    """``|W|`` divided by its sum along ``dim``; 0 where that sum is 0 (a row or column pruned whole)."""
    total = magnitude.sum(dim=dim, keepdim=True)
    return torch.where(total > 0, magnitude / total.clamp_min(torch.finfo(magnitude.dtype).tiny), 0.0)


def ria_scores(weight: torch.Tensor, stats: LayerStatistics, options: RIAOptions, generator: torch.Generator) -> torch.Tensor:
    if stats.sq_norms is None:
        raise ValueError("ria needs the input feature norms of each layer")
    magnitude = weight.detach().abs().to(torch.float32)
    importance = _relative(magnitude, dim=1) + _relative(magnitude, dim=0)
    activation = stats.sq_norms.to(device=weight.device, dtype=torch.float32).sqrt().pow(options.a)
    return importance * activation.unsqueeze(0)


RIA = register_method(Method(
    name="ria",
    options_type=RIAOptions,
    layer=LayerPruner("RIA (Zhang et al. 2024): relative importance of |W_ij| in its row and column x ||X_j||_2^a, "
                      "compared per layer", "norms", ("layer", "row"), score=ria_scores),
    comparable=False,  # scaled by each layer's own input norms
))
