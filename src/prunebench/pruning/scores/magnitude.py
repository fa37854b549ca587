"""Weight-magnitude scores (Han et al. 2015; ShrinkBench's GlobalMagWeight / LayerMagWeight)."""

from __future__ import annotations

import torch

from prunebench.pruning.scores.base import LayerPruner, LayerStatistics, NoOptions, ScoreInputs, Scores, register_scorer


def magnitude_of_layer(weight: torch.Tensor, stats: LayerStatistics, options: NoOptions, generator: torch.Generator) -> torch.Tensor:
    return weight.detach().abs()


# For language models: compared within each Linear by default (one threshold per layer: the
# magnitude baseline of the Wanda and SparseGPT papers, Wanda's `prune_magnitude`), per output
# row (`prune.scope: row`, the per-row variant Wanda's own metric uses), or across all layers
# (data-free scores are comparable across layers).
MAGNITUDE_LM = LayerPruner("|w| of each Linear weight in the decoder blocks", "none", ("layer", "row", "global"),
                           score=magnitude_of_layer)


# One method for both model kinds: data-free |w| of every prunable weight of a classifier, and
# of every decoder-block Linear of a language model.
@register_scorer("magnitude", layer=MAGNITUDE_LM, needs="nothing")
def magnitude(inputs: ScoreInputs, options: NoOptions) -> Scores:
    """|w|: the smallest weights are pruned."""
    return {name: p.detach().abs() for name, p in inputs.params.items()}
