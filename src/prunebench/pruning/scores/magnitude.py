"""Weight-magnitude scores (Han et al. 2015; ShrinkBench's GlobalMagWeight / LayerMagWeight)."""

from __future__ import annotations

from prunebench.pruning.scores.base import NoOptions, ScoreInputs, Scores, register_scorer


@register_scorer("magnitude")
def magnitude(inputs: ScoreInputs, options: NoOptions) -> Scores:
    """|w|: the smallest weights are pruned."""
    return {name: p.detach().abs() for name, p in inputs.params.items()}
