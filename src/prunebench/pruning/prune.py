"""score -> select -> mask, for any registered strategy.

The settings come as any object with :class:`PruneSettings`' attributes (a
:class:`prunebench.spec.PruneSpec` is one): pruning knows what it needs, not the config schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.metrics.size import unprunable_nonzero
from prunebench.pruning.channels import (
    CHANNEL_SCORERS, ChannelScoreInputs, ChannelTarget, channel_graph, layers_matching, score_channels, select_channels,
)
from prunebench.pruning.channels.merge import merge_pruned_channels
from prunebench.pruning.mask import Mask, shuffled_within
from prunebench.pruning.prunable import PrunablePolicy, prunable_parameters
from prunebench.pruning.rounds import scores_for_selection
from prunebench.pruning.scores import CLASSIFIER, WEIGHT_STRATEGIES, Batch, ScoreInputs
from prunebench.pruning.selection import keep_count_for_compression
from prunebench.pruning.structures import WeightStructure, check_structure, parse_structure, select_structured
from prunebench.target import Target

SHUFFLE_SEED_OFFSET = 7919  # the layer-shuffle permutation's generator: not the scorer's stream


class PruneSettings(Protocol):
    """What pruning reads of its settings (the fields of ``prune:`` in a config)."""

    @property
    def strategy(self) -> str: ...
    @property
    def scope(self) -> Any: ...  # "global" or "layer"
    @property
    def compression(self) -> float: ...
    @property
    def target(self) -> Target: ...  # e.g. Target(kind="speedup", value=2.0)
    @property
    def structure(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...
    @property
    def prunable(self) -> PrunablePolicy: ...
    @property
    def score_batches(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def merge(self) -> bool: ...  # channel pruning: Neuron Merging before the mask is applied
    @property
    def merge_threshold(self) -> float: ...
    @property
    def shuffle(self) -> bool: ...  # layer-shuffle control: permute the selection within each tensor


def scoring_batches(data: DataSplits, batch_size: int, count: int, seed: int) -> list[Batch]:
    """``count`` seeded random training batches (fewer if the training set is small)."""
    order = torch.randperm(data.train_x.shape[0], generator=torch.Generator().manual_seed(seed))
    order = order.to(data.train_x.device)
    starts = range(0, min(count * batch_size, order.numel()), batch_size)
    return [(data.train_x[order[s : s + batch_size]], data.train_y[order[s : s + batch_size]]) for s in starts]


def keep_count(model: nn.Module, spec: PruneSettings) -> int:
    """Prunable entries to keep for ``spec.compression``; raises ConfigError if unreachable.

    The structure may fix the count itself (N:M: N of every M); a shape it cannot tile is refused.
    """
    params = prunable_parameters(model, spec.prunable)
    if not params:
        raise ConfigError(f"prune.prunable selects no parameters of {type(model).__name__}")
    structure = parse_structure(spec.structure)
    if not isinstance(structure, WeightStructure):  # whole channels: the count follows from the channels chosen
        return sum(p.numel() for p in params.values())
    shapes = {name: p.shape for name, p in params.items()}
    structure.check_shapes(shapes)
    return structure.keep_count(shapes, lambda: keep_count_for_compression(
        params_total=sum(p.numel() for p in model.parameters()),
        unprunable_nonzero=unprunable_nonzero(model, params),
        prunable_total=sum(p.numel() for p in params.values()),
        compression=spec.resolved_compression,
    ))


def prune_model(
    model: nn.Module,
    data: DataSplits,
    spec: PruneSettings,
    *,
    seed: int,
    previous: Mask | None = None,
    keep: int | Mapping[str, int] | None = None,
) -> Mask:
    """Score the prunable parameters, select exactly enough, zero the rest in place.

    ``seed`` seeds the scorer's batches and generator and draws which of the scores tied at the
    keep boundary are pruned (:mod:`prunebench.pruning.selection`).

    ``keep`` overrides the target of ``spec.compression``: a total, or a count per parameter
    (schedules use it for their intermediate steps).
    """
    structure = parse_structure(spec.structure)
    if not isinstance(structure, WeightStructure):  # whole channels, selected on the channel graph
        return prune_channel_model(model, data, spec, seed=seed, previous=previous)
    strategy = WEIGHT_STRATEGIES.get(spec.strategy)
    strategy.check_scope(spec.scope, CLASSIFIER)  # a layer-local saliency (OBS) refuses global
    options = strategy.parse_options(spec.options)
    if keep is None:
        keep = keep_count(model, spec)
    params = prunable_parameters(model, spec.prunable)
    inputs = ScoreInputs(
        model=model,
        params=params,
        batches=scoring_batches(data, spec.batch_size, spec.score_batches, seed),
        loss_fn=F.cross_entropy,
        generator=torch.Generator().manual_seed(seed),
    )
    scores = scores_for_selection(strategy, inputs, options, keep if isinstance(keep, int) else sum(keep.values()), seed)
    if isinstance(keep, Mapping):  # each tensor to its own count (layer-wise schedules)
        mask = Mask({  # scope layer: one tensor's exact count, its ties drawn by its own generator
            name: select_structured(
                {name: score}, keep[name], structure, "layer",
                Mask({name: previous[name]}) if previous is not None else None, seed=seed,
            )[name]
            for name, score in scores.items()
        })
    else:
        mask = select_structured(scores, keep, structure, spec.scope, previous, seed=seed)
    check_structure(mask, structure)
    if spec.shuffle:  # the same count per tensor, at random positions (seeded apart from the scorer's)
        mask = shuffled_within(mask, torch.Generator().manual_seed(seed + SHUFFLE_SEED_OFFSET))
    if strategy.update is not None:  # it sees the weights it scored (OBS needs the pruned ones' values)
        with torch.no_grad():
            strategy.update(inputs, mask, options)
    mask.apply(model)  # after an update too: an update moves the survivors only
    return mask


def prune_channel_model(
    model: nn.Module, data: DataSplits, spec: PruneSettings, *, seed: int, previous: Mask | None = None
) -> Mask:
    """Remove whole channels (coupled ones together) to ``spec.target``; zero them in place.

    The mask covers every tensor a removed channel touches (weights, biases, batch-norm
    parameters, the next layer's input slices), so compaction can drop them physically.
    A layer with a parameter matched by ``prune.prunable.exclude`` keeps all its output channels.
    """
    CHANNEL_SCORERS.get(spec.strategy).check_scope(spec.scope, CLASSIFIER)
    target = spec.target
    batches = scoring_batches(data, spec.batch_size, spec.score_batches, seed)
    graph = channel_graph(model, data.input_shape, layers_matching(model, spec.prunable.exclude))
    scores = score_channels(spec.strategy, model, graph, batches, seed=seed, options=spec.options)
    # channel selection's own instruction: ChannelTarget refuses a kind it cannot reach
    channel_target = ChannelTarget(target.kind, float(target.value))  # type: ignore[arg-type]
    selection = select_channels(graph, model, scores, channel_target, spec.scope, previous, seed=seed)
    strategy = CHANNEL_SCORERS.get(spec.strategy)
    if strategy.update is not None:  # before the mask: a reconstruction needs the pruned channels' weights
        inputs = ChannelScoreInputs(model, graph, batches, F.cross_entropy, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            strategy.update(inputs, selection.pruned, strategy.parse_options(spec.options))
    elif spec.merge:  # before the mask: merging reads the pruned filters and the weights reading them
        merge_pruned_channels(model, graph, selection.pruned, spec.merge_threshold)
    selection.mask.apply(model)  # an update moves the survivors only
    return selection.mask
