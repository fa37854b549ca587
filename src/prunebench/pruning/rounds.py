"""The scoring loop an iterative strategy is driven through: score -> provisional mask -> rescore.

A strategy declares how many ``rounds`` its options ask for (SynFlow: ``prune.options.rounds``).
Round k scores the model with the previous rounds' pruned entries zeroed (on a copy), then keeps
n * (keep / n) ** (k / rounds) entries, so the last round keeps exactly ``keep``. The scores
handed to the selection rank entries pruned in an earlier round below every later one, and the
survivors above all of them by their last scores, so any selection of ``keep`` entries returns
the loop's mask. Scores of an iterative strategy must be non-negative.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from prunebench.pruning.mask import Mask
from prunebench.pruning.scores.base import ScoreInputs, Scores, Strategy
from prunebench.pruning.selection import select


def masked_inputs(inputs: ScoreInputs, mask: Mask) -> ScoreInputs:
    """``inputs`` on a copy of the model with ``mask``'s pruned entries zeroed."""
    model = copy.deepcopy(inputs.model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, keep in mask.items():
            params[name].mul_(keep.to(params[name].dtype))
    return ScoreInputs(model, {name: params[name] for name in inputs.params}, inputs.batches,
                       inputs.loss_fn, inputs.generator)


def scores_for_selection(strategy: Strategy[Any], inputs: ScoreInputs, options: Any, keep: int, seed: int = 0) -> Scores:
    """The scores a selection of ``keep`` entries is made from: one call of a one-round
    strategy; for an iterative one, its rounds as described above (``seed``, the run's, breaks
    the ties of the provisional masks as it breaks the final one's)."""
    rounds = strategy.rounds(options)
    if rounds == 1 and strategy.rank is None:  # an ordinary strategy: score once
        return strategy(inputs, options)
    names = list(inputs.params)
    total = sum(p.numel() for p in inputs.params.values())
    if keep >= total:  # nothing to prune: the single-shot scores
        rounds = 1
    rank = strategy.rank or (lambda s: s)
    mask = Mask.ones(inputs.params)
    pruned_in: dict[str, torch.Tensor] = {}
    scores: Scores = {}
    for k in range(1, rounds + 1):
        scores = strategy(masked_inputs(inputs, mask) if k > 1 else inputs, options)
        if rounds == 1:
            break
        target = round(total * (keep / total) ** (k / rounds))
        new_mask = select({n: rank(s) for n, s in scores.items()}, target, "global", mask, seed=seed)
        for name in names:
            pruned = pruned_in.setdefault(name, torch.zeros_like(scores[name]))
            pruned[mask[name] & ~new_mask[name]] = k
        mask = new_mask
    largest = max(float(s.max()) for s in scores.values()) or 1.0
    device = {name: inputs.params[name].device for name in names}
    if rounds == 1:  # divided by the largest: a common positive factor changes no ranking
        return {name: (scores[name] / largest).float().to(device[name]) for name in names}
    # pruned entries score the round they left in (1..rounds); survivors rounds + 1 + score share
    return {
        name: torch.where(mask[name], rounds + 1 + scores[name] / largest, pruned_in[name]).float().to(device[name])
        for name in names
    }
