"""Wanda (Sun, Liu, Bair & Kolter 2024, "A Simple and Effective Pruning Approach for Large
Language Models"): the score of weight ``W_ij`` is ``|W_ij| * ||X_j||_2``, its magnitude times
the norm of its input feature over the calibration tokens, compared within each output row
(the paper's default; per layer is allowed and worse in the paper). No weight update. Scores
need calibration data and are not comparable across layers, so there is no global scope."""

from __future__ import annotations

import torch

from prunebench.pruning.scores.base import LayerPruner, LayerStatistics, Method, NoOptions, register_method


def wanda_scores(weight: torch.Tensor, stats: LayerStatistics, options: NoOptions, generator: torch.Generator) -> torch.Tensor:
    if stats.sq_norms is None:
        raise ValueError("wanda needs the input feature norms of each layer")
    return weight.detach().abs().to(torch.float32) * stats.sq_norms.sqrt().to(weight.device).unsqueeze(0)


WANDA = register_method(Method(
    name="wanda",
    layer=LayerPruner("Wanda (Sun et al. 2024): |W_ij| x ||X_j||_2, compared per output row", "norms", ("row", "layer"),
                      score=wanda_scores),
    comparable=False,  # scaled by each layer's own input norms
))
