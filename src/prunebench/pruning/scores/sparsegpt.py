"""SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot"): per Linear, the Hessian ``X X^T`` of the calibration inputs, dampened by
1% of its mean diagonal; columns swept in blocks of 128 with the mask of each block chosen
adaptively by the OBS saliency ``w^2 / [H^-1]_cc^2`` over the whole block (the paper's scope
``layer``; ``row`` prunes the same count in every row), and the kept weights updated to
compensate (:func:`prunebench.pruning.obs.sparsegpt_prune`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
from pydantic import Field

from prunebench.pruning.obs import sparsegpt_prune
from prunebench.pruning.scores.base import LayerPruner, LayerStatistics, LayerTarget, Method, register_method


@dataclasses.dataclass(frozen=True)
class SparseGPTOptions:
    blocksize: Annotated[int, Field(ge=1)] = 128  # columns whose mask is chosen together
    percdamp: Annotated[float, Field(gt=0)] = 0.01  # dampening, a fraction of the mean Hessian diagonal


def sparsegpt_layer(
    weight: torch.Tensor, stats: LayerStatistics, target: LayerTarget, options: SparseGPTOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    if stats.hessian is None:
        raise ValueError("sparsegpt needs the input Hessian of each layer")
    return sparsegpt_prune(
        weight, stats.hessian.to(weight.device), sparsity=target.sparsity, n=target.n, m=target.m,
        per_row=target.scope == "row", pruned=target.pruned, blocksize=options.blocksize, percdamp=options.percdamp,
    )


SPARSEGPT = register_method(Method(
    name="sparsegpt",
    options_type=SparseGPTOptions,
    layer=LayerPruner("SparseGPT (Frantar & Alistarh 2023): OBS pruning with weight reconstruction, blocks of 128 columns",
                      "hessian", ("layer", "row"), prune=sparsegpt_layer),
    comparable=False,  # OBS saliencies, in each layer's own units
))
