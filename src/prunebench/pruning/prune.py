"""score -> select -> mask, for any registered strategy."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.config import PruneSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.metrics.size import unprunable_nonzero
from prunebench.pruning.mask import Mask
from prunebench.pruning.prunable import prunable_parameters
from prunebench.pruning.scores import STRATEGIES, Batch, ScoreInputs
from prunebench.pruning.select import keep_count_for_compression, select


def scoring_batches(data: DataSplits, batch_size: int, count: int, seed: int) -> list[Batch]:
    """``count`` seeded random training batches (fewer if the training set is small)."""
    order = torch.randperm(data.train_x.shape[0], generator=torch.Generator().manual_seed(seed))
    order = order.to(data.train_x.device)
    starts = range(0, min(count * batch_size, order.numel()), batch_size)
    return [(data.train_x[order[s : s + batch_size]], data.train_y[order[s : s + batch_size]]) for s in starts]


def keep_count(model: nn.Module, spec: PruneSpec) -> int:
    """Prunable entries to keep for ``spec.compression``; raises ConfigError if unreachable."""
    params = prunable_parameters(model, spec.prunable)
    if not params:
        raise ConfigError(f"prune.prunable selects no parameters of {type(model).__name__}")
    return keep_count_for_compression(
        params_total=sum(p.numel() for p in model.parameters()),
        unprunable_nonzero=unprunable_nonzero(model, params),
        prunable_total=sum(p.numel() for p in params.values()),
        compression=spec.compression,
    )


def prune_model(
    model: nn.Module, data: DataSplits, spec: PruneSpec, *, seed: int, previous: Mask | None = None
) -> Mask:
    """Score the prunable parameters, select exactly enough, zero the rest in place."""
    strategy = STRATEGIES.get(spec.strategy)
    options = strategy.parse_options(spec.options)
    keep = keep_count(model, spec)
    params = prunable_parameters(model, spec.prunable)
    inputs = ScoreInputs(
        model=model,
        params=params,
        batches=scoring_batches(data, spec.batch_size, spec.score_batches, seed),
        loss_fn=F.cross_entropy,
        generator=torch.Generator().manual_seed(seed),
    )
    mask = select(strategy(inputs, options), keep, spec.scope, previous)
    mask.apply(model)
    return mask
