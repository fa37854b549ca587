"""Channel selection: the fewest lowest-scored channels that reach a target, as a Mask."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.errors import ConfigError
from prunebench.pruning.channels.graph import Batch, ChannelGraph, LossFn, Scope, channel_graph
from prunebench.pruning.channels.scorers import rows, score_channels
from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import tie_generator

TargetKind = Literal["compression", "speedup", "channel_fraction"]


@dataclass(frozen=True)
class ChannelTarget:
    """How much to prune: whole-model ``compression`` (total / remaining parameters), a MAC
    reduction given as theoretical ``speedup`` (dense / remaining MACs), or the
    ``channel_fraction`` of prunable channels to remove."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        if self.kind in ("compression", "speedup"):
            if not self.value >= 1:
                raise ConfigError(f"prune.{self.kind} must be >= 1, got {self.value}")
        elif self.kind == "channel_fraction":
            if not 0 <= self.value < 1:
                raise ConfigError(f"prune.channel_fraction must be in [0, 1), got {self.value}")
        else:
            raise ConfigError(f"prune target must be compression, speedup or channel_fraction, got {self.kind!r}")


@dataclass(frozen=True)
class ChannelAchieved:
    """What a selection reaches, whatever the target was."""

    compression: float
    speedup: float
    channel_fraction: float
    params_kept: int
    macs_kept: int
    channels_pruned: int


@dataclass(frozen=True)
class ChannelSelection:
    mask: Mask
    pruned: dict[str, list[int]]  # group root -> pruned channel indices
    achieved: ChannelAchieved
    target: ChannelTarget


def build_mask(graph: ChannelGraph, model: nn.Module, pruned: Sequence[torch.Tensor]) -> Mask:
    """Zero every slice of each pruned channel; ``pruned[i]`` flags group i's channels."""
    params = dict(model.named_parameters())
    keep: dict[str, torch.Tensor] = {}
    for g, flags in zip(graph.groups, pruned):
        for s in g.slices:
            tensor = keep.setdefault(s.param, torch.ones(params[s.param].shape, dtype=torch.bool))
            hit = s.positions[flags[s.owner]]
            if hit.numel():
                tensor.index_fill_(s.dim, hit, False)
    return Mask(keep)


def kept_entries(graph: ChannelGraph, flags: Sequence[torch.Tensor]) -> dict[str, int]:
    """Entries each sliced parameter keeps when the flagged channels go, without building
    the mask: a parameter keeps the product over its channel dimensions of the kept fraction
    (slices of different groups on one dimension cover disjoint positions)."""
    pruned: dict[str, dict[int, int]] = {}
    for g, f in zip(graph.groups, flags):
        for s in g.slices:
            dims = pruned.setdefault(s.param, {})
            dims[s.dim] = dims.get(s.dim, 0) + int(f[s.owner].sum())
    kept = {}
    for name, dims in pruned.items():
        shape = graph.shapes[name]
        count = math.prod(shape)
        for dim, gone in dims.items():
            count = count // shape[dim] * (shape[dim] - gone)
        kept[name] = count
    return kept


def achieved(graph: ChannelGraph, flags: Sequence[torch.Tensor]) -> ChannelAchieved:
    """Parameters and MACs left when the flagged channels go, counted as the size and MAC
    metrics count them on the masked model (weights that are not exactly zero)."""
    kept = kept_entries(graph, flags)
    params_kept = graph.params_total - sum(math.prod(graph.shapes[n]) - k for n, k in kept.items())
    macs_kept = 0
    for module, macs in graph.macs.items():
        weight = f"{module}.weight" if module else "weight"
        density = kept[weight] / math.prod(graph.shapes[weight]) if weight in kept else 1.0
        macs_kept += round(macs * density)
    channels_pruned = sum(g.channels_in(f) for g, f in zip(graph.groups, flags))
    return ChannelAchieved(
        compression=graph.params_total / max(params_kept, 1),
        speedup=graph.dense_macs_total / max(macs_kept, 1),
        channel_fraction=channels_pruned / max(graph.channels_total, 1),
        params_kept=params_kept,
        macs_kept=macs_kept,
        channels_pruned=channels_pruned,
    )


def prune_order(
    graph: ChannelGraph, scores: Sequence[torch.Tensor], scope: Scope, generator: torch.Generator
) -> list[tuple[int, int]]:
    """(group, channel) pairs in the order they are pruned; every group keeps one channel.

    ``global`` ranks all channels by score. ``layer`` ranks channels within their group and
    interleaves the groups by rank fraction, so any prefix prunes (nearly) the same fraction
    of every group. Ties (equal scores, equal rank fractions) are ordered by a random
    permutation of all channels drawn from ``generator``, never by position.
    """
    if scope not in ("global", "layer"):
        raise ConfigError(f"prune.scope must be 'global' or 'layer', got {scope!r}")
    draw = torch.randperm(sum(g.channels for g in graph.groups), generator=generator).tolist()
    starts = [0]
    for g in graph.groups:
        starts.append(starts[-1] + g.channels)
    keys: list[tuple[float, int, int, int]] = []
    for gi, (g, s) in enumerate(zip(graph.groups, scores)):
        tie_key = draw[starts[gi] : starts[gi + 1]]
        ranked = sorted(range(g.channels), key=lambda c: (float(s[c]), tie_key[c]))[: g.channels - 1]
        for rank, c in enumerate(ranked):
            keys.append(((rank + 1) / g.channels if scope == "layer" else float(s[c]), tie_key[c], gi, c))
    keys.sort()
    return [(gi, c) for _, _, gi, c in keys]


def flags_for(graph: ChannelGraph, order: Sequence[tuple[int, int]], count: int) -> list[torch.Tensor]:
    chosen: list[list[int]] = [[] for _ in graph.groups]
    for gi, c in order[:count]:
        chosen[gi].append(c)
    flags = [torch.zeros(g.channels, dtype=torch.bool) for g in graph.groups]
    for f, cs in zip(flags, chosen):
        f[cs] = True
    return flags


def previously_pruned(graph: ChannelGraph, previous: Mask) -> list[torch.Tensor]:
    """Channels whose writer filters a previous mask removed entirely."""
    flags = []
    for g in graph.groups:
        alive = torch.zeros(g.channels, dtype=torch.bool)
        for s in g.of_role("out") + g.of_role("out", "bias"):
            kept = rows(previous[s.param], s).any(1) if s.param in previous else torch.ones(s.positions.numel(), dtype=torch.bool)
            alive.index_fill_(0, s.owner[kept], True)
        flags.append(~alive)
    return flags


def select_channels(
    graph: ChannelGraph,
    model: nn.Module,
    scores: Sequence[torch.Tensor],
    target: ChannelTarget,
    scope: Scope = "global",
    previous: Mask | None = None,
    *,
    seed: int = 0,
) -> ChannelSelection:
    """Prune the fewest lowest-scored channels that reach ``target``.

    For a channel fraction the count is exact (rounded); for compression and speedup the
    smallest prefix of the pruning order that reaches the target is found by bisection (both
    only grow as channels go). Channels a ``previous`` mask removed stay removed. ``seed``
    (the run's) orders tied channels, as :mod:`prunebench.pruning.selection` breaks ties.
    """
    scores = [s.detach().float().cpu().clone() for s in scores]
    before = previously_pruned(graph, previous) if previous is not None else None
    if before is not None:
        for s, flag in zip(scores, before):
            s[flag] = -math.inf  # ranked first, and kept pruned below whatever the order
    order = prune_order(graph, scores, scope, tie_generator(seed, "channels"))

    def flags_at(count: int) -> list[torch.Tensor]:
        flags = flags_for(graph, order, count)
        return flags if before is None else [f | b for f, b in zip(flags, before)]

    def evaluate(count: int) -> ChannelAchieved:
        return achieved(graph, flags_at(count))

    def reached(count: int) -> bool:
        result = evaluate(count)
        if target.kind == "channel_fraction":  # units of several channels reach it from above
            return result.channels_pruned >= round(target.value * graph.channels_total)
        return (result.compression if target.kind == "compression" else result.speedup) >= target.value * (1 - 1e-9)

    if target.kind == "channel_fraction" and not reached(len(order)):
        count = len(order)
    else:
        if not reached(len(order)):
            most = evaluate(len(order))
            raise ConfigError(
                f"prune.{target.kind} {target.value:g} cannot be reached by channel pruning: at one channel "
                f"per layer this model reaches compression {most.compression:.2f}, speedup {most.speedup:.2f}"
            )
        low, high = 0, len(order)
        while low < high:
            mid = (low + high) // 2
            if reached(mid):
                high = mid
            else:
                low = mid + 1
        count = low
    flags = flags_at(count)
    mask, result = build_mask(graph, model, flags), achieved(graph, flags)
    pruned = {g.root: torch.nonzero(f).squeeze(1).tolist() for g, f in zip(graph.groups, flags)}
    return ChannelSelection(mask=mask, pruned=pruned, achieved=result, target=target)


def prune_channels(
    model: nn.Module,
    input_shape: tuple[int, ...],
    strategy: str,
    target: ChannelTarget,
    scope: Scope = "global",
    batches: Sequence[Batch] = (),
    loss_fn: LossFn = F.cross_entropy,
    seed: int = 0,
    exclude: Iterable[str] = (),
    previous: Mask | None = None,
    options: Mapping[str, Any] | None = None,
) -> ChannelSelection:
    """Score, select and return the channel mask (the model is not modified; apply the mask
    with ``selection.mask.apply(model)``, keep it with KeepPruned, remove it with compact)."""
    graph = channel_graph(model, input_shape, exclude)
    scores = score_channels(strategy, model, graph, batches, loss_fn, seed, options)
    return select_channels(graph, model, scores, target, scope, previous, seed=seed)
