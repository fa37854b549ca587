"""Channel (filter) pruning: coupled channel groups, channel scorers, and selection for a target.

A *channel group* is one set of channels that must be removed together: the filters of every
layer that writes the channel (several of them where a residual addition merges streams), the
BatchNorm scale and shift of each, and the input slices of every layer that reads it (a
depthwise convolution both reads and writes it). The groups come from Torch-Pruning's
dependency graph, imported lazily (``pip install prunebench[structured]``).

The result of a selection is an ordinary :class:`~prunebench.pruning.mask.Mask` that zeroes
every parameter slice of each pruned channel. A model with that mask applied computes exactly
what the physically smaller model of :func:`prunebench.pruning.compact.compact` computes, and
the effective parameter and MAC counts of the masked model are those of the compact one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.errors import ConfigError
from prunebench.metrics.flops import dense_macs
from prunebench.pruning.mask import Mask
from prunebench.pruning.prunable import classifier_name
from prunebench.registry import Registry

Role = Literal["out", "in", "norm"]
Scope = Literal["global", "layer"]
TargetKind = Literal["compression", "speedup", "channel_fraction"]
Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

INSTALL_HINT = "pip install prunebench[structured]"


def require_torch_pruning() -> ModuleType:
    """Import Torch-Pruning, or explain how to install it."""
    try:
        import torch_pruning
    except ImportError:
        raise ConfigError(
            f"structured (channel) pruning needs Torch-Pruning, which is not installed: {INSTALL_HINT}"
        ) from None
    return torch_pruning


@dataclass(frozen=True)
class ChannelSlice:
    """Where a group's channels live in one parameter.

    ``positions[i]`` indexes dimension ``dim`` of ``param`` and belongs to group channel
    ``owner[i]``. A channel may own several positions (a Linear layer after a flatten reads
    every pixel of the channel).
    """

    param: str
    dim: int
    positions: torch.Tensor
    owner: torch.Tensor
    role: Role  # out: a filter (or its bias) that writes the channel; in: a reader; norm: BN


@dataclass(frozen=True)
class ChannelGroup:
    root: str  # the module whose output channels number the group's channels
    channels: int
    slices: tuple[ChannelSlice, ...]

    def of_role(self, role: Role, kind: str = "weight") -> list[ChannelSlice]:
        return [s for s in self.slices if s.role == role and s.param.endswith("." + kind)]


@dataclass(frozen=True)
class ChannelGraph:
    """The prunable channel groups of a model, with what is needed to count their cost."""

    groups: tuple[ChannelGroup, ...]
    params_total: int
    macs: dict[str, int]  # module name -> dense MACs of one example
    shapes: dict[str, tuple[int, ...]]  # parameter name -> shape
    input_shape: tuple[int, ...]
    exclude: tuple[str, ...] = ()

    @property
    def channels_total(self) -> int:
        return sum(g.channels for g in self.groups)

    @property
    def dense_macs_total(self) -> int:
        return sum(self.macs.values())


def excluded_layers(model: nn.Module, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Layers whose output channels are never pruned: the classifier (its outputs are the
    classes), the model's own ``fixed_channel_layers`` and those the caller names."""
    names = list(exclude) + list(getattr(model, "fixed_channel_layers", ()))
    classifier = classifier_name(model)
    if classifier is not None:
        names.append(classifier)
    known = {name for name, _ in model.named_modules()}
    for name in names:
        if name not in known:
            raise ConfigError(f"prune.prunable.exclude: {name!r} is not a module of the model")
    return tuple(dict.fromkeys(names))


def dependency_graph(model: nn.Module, input_shape: tuple[int, ...], exclude: Iterable[str] = ()) -> tuple[Any, list[Any], tuple[str, ...]]:
    """Torch-Pruning's dependency graph of ``model`` and its prunable groups (full indices)."""
    tp = require_torch_pruning()
    excluded = excluded_layers(model, exclude)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # tracing runs a forward pass, which must not move BN running statistics
    try:
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(1, *input_shape, device=device)
        )
    finally:
        model.train(was_training)
    ignored = [model.get_submodule(name) for name in excluded]
    groups = list(graph.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)))
    return graph, groups, excluded


def is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and module.groups == module.in_channels == module.out_channels


def slices_of(module: nn.Module, name: str, is_out: bool, idxs: list[int], root_idxs: list[int]) -> list[ChannelSlice]:
    """The parameter slices that one Torch-Pruning group item removes."""
    positions = torch.tensor(idxs, dtype=torch.long)
    owner = torch.tensor(root_idxs, dtype=torch.long)
    prefix = f"{name}." if name else ""

    def make(kind: str, dim: int, role: Role) -> list[ChannelSlice]:
        if not isinstance(getattr(module, kind, None), nn.Parameter):
            return []
        return [ChannelSlice(prefix + kind, dim, positions, owner, role)]

    if isinstance(module, _BatchNorm):
        return make("weight", 0, "norm") + make("bias", 0, "norm")
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and not is_depthwise(module):
            raise ConfigError(f"channel pruning supports plain and depthwise convolutions, not {module.groups}-group {name}")
        if is_out or is_depthwise(module):
            return make("weight", 0, "out") + make("bias", 0, "out")
        return make("weight", 1, "in")
    if any(True for _ in module.parameters(recurse=False)):
        raise ConfigError(f"channel pruning does not support {type(module).__name__} layers ({name})")
    return []  # Torch-Pruning's own nodes for additions, activations, reshapes: no parameters


def merge(slices: list[ChannelSlice]) -> tuple[ChannelSlice, ...]:
    """One slice per (param, dim): an item may appear twice (a depthwise conv read and written)."""
    merged: dict[tuple[str, int], ChannelSlice] = {}
    for s in slices:
        key = (s.param, s.dim)
        if key in merged:
            old = merged[key]
            positions = torch.cat([old.positions, s.positions])
            owner = torch.cat([old.owner, s.owner])
            unique, first = unique_first(positions)
            merged[key] = ChannelSlice(s.param, s.dim, unique, owner[first], old.role)
        else:
            merged[key] = s
    return tuple(merged.values())


def unique_first(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values and the index of each one's first occurrence."""
    unique, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((unique.numel(),), values.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(values.numel()), reduce="amin")
    return unique, first


def groups_from(model: nn.Module, graph: Any, tp_groups: Iterable[Any]) -> tuple[ChannelGroup, ...]:
    """prunebench's view of Torch-Pruning groups: parameter slices by name."""
    names = {module: name for name, module in model.named_modules()}
    groups = []
    for tp_group in tp_groups:
        root = tp_group[0].dep.target.module
        slices: list[ChannelSlice] = []
        for item in tp_group.items:
            module = item.dep.target.module
            if module not in names:  # a Torch-Pruning node standing for a functional op
                continue
            is_out = graph.is_out_channel_pruning_fn(item.dep.handler)
            slices += slices_of(module, names[module], is_out, list(item.idxs), list(item.root_idxs))
        channels = graph.get_pruner_of_module(root).get_out_channels(root)
        groups.append(ChannelGroup(root=names[root], channels=int(channels), slices=merge(slices)))
    return tuple(groups)


def channel_graph(model: nn.Module, input_shape: tuple[int, ...], exclude: Iterable[str] = ()) -> ChannelGraph:
    """Find the prunable channel groups of ``model`` for inputs of ``input_shape`` (no batch)."""
    graph, tp_groups, excluded = dependency_graph(model, tuple(input_shape), exclude)
    return ChannelGraph(
        groups=groups_from(model, graph, tp_groups),
        params_total=sum(p.numel() for p in model.parameters()),
        macs=dense_macs(model, tuple(input_shape)),
        shapes={name: tuple(p.shape) for name, p in model.named_parameters()},
        input_shape=tuple(input_shape),
        exclude=excluded,
    )


# ----------------------------------------------------------------------------- scorers


@dataclass(frozen=True)
class ChannelScoreInputs:
    """What a channel scorer may look at; it must not change the model's weights or mode."""

    model: nn.Module
    graph: ChannelGraph
    batches: Sequence[Batch] = ()
    loss_fn: LossFn = F.cross_entropy
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))


# A channel scorer returns one score per channel of each group (low scores are pruned).
ChannelScorer = Callable[[ChannelScoreInputs], list[torch.Tensor]]
CHANNEL_SCORERS: Registry[ChannelScorer] = Registry("channel strategy")


def rows(tensor: torch.Tensor, s: ChannelSlice) -> torch.Tensor:
    """One row per position of ``s``: the parameter's entries belonging to that position."""
    return tensor.detach().index_select(s.dim, s.positions).movedim(s.dim, 0).reshape(s.positions.numel(), -1).float()


def per_channel(group: ChannelGroup, slices: Iterable[ChannelSlice], values: Callable[[ChannelSlice], torch.Tensor]) -> torch.Tensor:
    """Sum ``values(slice)`` (one value per position) into the group's channels."""
    total = torch.zeros(group.channels)
    for s in slices:
        total.index_add_(0, s.owner, values(s).cpu())
    return total


@CHANNEL_SCORERS.register("l1_filter")
def l1_filter(inputs: ChannelScoreInputs) -> list[torch.Tensor]:
    """Li et al. 2017, "Pruning Filters for Efficient ConvNets": the sum of absolute kernel
    weights of each filter. Where several layers write one channel (a residual stream), the
    channel's score is the sum over those filters."""
    params = dict(inputs.model.named_parameters())
    return [
        per_channel(g, g.of_role("out"), lambda s: rows(params[s.param], s).abs().sum(1))
        for g in inputs.graph.groups
    ]


@CHANNEL_SCORERS.register("fpgm")
def fpgm(inputs: ChannelScoreInputs) -> list[torch.Tensor]:
    """He et al. 2019, "Filter Pruning via Geometric Median": filters close to the geometric
    median of their layer are the most replaceable. As in the paper (Eq. 6), a filter's score
    is the sum of its Euclidean distances to the other filters of its layer; the smallest
    sums are pruned. Channels written by several layers sum their per-layer scores."""
    params = dict(inputs.model.named_parameters())

    def distance_sums(s: ChannelSlice) -> torch.Tensor:
        filters = rows(params[s.param], s)
        return torch.cdist(filters.unsqueeze(0), filters.unsqueeze(0)).squeeze(0).sum(1)

    return [per_channel(g, g.of_role("out"), distance_sums) for g in inputs.graph.groups]


@CHANNEL_SCORERS.register("slimming")
def slimming(inputs: ChannelScoreInputs) -> list[torch.Tensor]:
    """Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming":
    the absolute BatchNorm scale |gamma| of each channel (summed where several BNs share a
    channel). Train with :func:`slimming_loss` first, as the paper does."""
    params = dict(inputs.model.named_parameters())
    scores = []
    for g in inputs.graph.groups:
        norms = g.of_role("norm")
        if not norms:
            raise ConfigError(f"prune.strategy slimming needs BatchNorm after every pruned layer; {g.root} has none")
        scores.append(per_channel(g, norms, lambda s: rows(params[s.param], s).abs().sum(1)))
    return scores


@CHANNEL_SCORERS.register("taylor")
def taylor(inputs: ChannelScoreInputs) -> list[torch.Tensor]:
    """Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning": the
    importance of a set of parameters S is (sum over s in S of g_s * w_s)^2, a first-order
    estimate of the loss change when S is removed, averaged over mini-batches. S is every
    parameter slice removed with the channel (filters, BN scale and shift, reader slices).
    Gradients are taken in training mode on a copy, so the model's BN statistics stay put."""
    if not inputs.batches:
        raise ConfigError("prune.strategy taylor needs training batches (set prune.score_batches >= 1)")
    import copy

    model = copy.deepcopy(inputs.model).train()
    params = dict(model.named_parameters())
    totals = [torch.zeros(g.channels) for g in inputs.graph.groups]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=inputs.generator))
    for x, y in inputs.batches:
        model.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=[]):  # dropout draws from the scorer's seed only
            torch.manual_seed(seed)
            inputs.loss_fn(model(x), y).backward()
        for total, g in zip(totals, inputs.graph.groups):
            def contribution(s: ChannelSlice) -> torch.Tensor:
                p = params[s.param]
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                return (rows(grad, s) * rows(p, s)).sum(1)

            total += per_channel(g, g.slices, contribution) ** 2
    return [t / len(inputs.batches) for t in totals]


@CHANNEL_SCORERS.register("random_channel")
def random_channel(inputs: ChannelScoreInputs) -> list[torch.Tensor]:
    """Uniform random channel scores: the baseline every structured method must beat."""
    return [torch.rand(g.channels, generator=inputs.generator) for g in inputs.graph.groups]


def slimming_loss(model: nn.Module, strength: float, base: LossFn = F.cross_entropy) -> LossFn:
    """Liu et al. 2017's training objective: ``base`` + strength * sum |gamma| over every BN
    scale, which drives unimportant channels' scales towards zero (the paper uses 1e-4 for
    VGG). Pass it as ``loss_fn`` to the training loop for the sparsity-training phase."""
    if strength < 0:
        raise ConfigError(f"slimming_loss: strength must be >= 0, got {strength}")
    scales = [m.weight for m in model.modules() if isinstance(m, _BatchNorm) and m.weight is not None]
    if not scales:
        raise ConfigError("slimming training needs a model with BatchNorm layers")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return base(logits, target) + strength * sum(s.abs().sum() for s in scales)

    return loss


def score_channels(
    strategy: str,
    model: nn.Module,
    graph: ChannelGraph,
    batches: Sequence[Batch] = (),
    loss_fn: LossFn = F.cross_entropy,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Run a registered channel scorer and check its output (one finite score per channel)."""
    scorer = CHANNEL_SCORERS.get(strategy)
    inputs = ChannelScoreInputs(model, graph, batches, loss_fn, torch.Generator().manual_seed(seed))
    scores = scorer(inputs)
    if len(scores) != len(graph.groups):
        raise ValueError(f"channel strategy {strategy!r} scored {len(scores)} groups, expected {len(graph.groups)}")
    for g, s in zip(graph.groups, scores):
        if s.shape != (g.channels,) or bool(torch.isnan(s).any()):
            raise ValueError(f"channel strategy {strategy!r}: bad scores for group {g.root}")
    return scores


# ----------------------------------------------------------------------------- selection


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
    channels_pruned = sum(int(f.sum()) for f in flags)
    return ChannelAchieved(
        compression=graph.params_total / max(params_kept, 1),
        speedup=graph.dense_macs_total / max(macs_kept, 1),
        channel_fraction=channels_pruned / max(graph.channels_total, 1),
        params_kept=params_kept,
        macs_kept=macs_kept,
        channels_pruned=channels_pruned,
    )


def prune_order(graph: ChannelGraph, scores: Sequence[torch.Tensor], scope: Scope) -> list[tuple[int, int]]:
    """(group, channel) pairs in the order they are pruned; every group keeps one channel.

    ``global`` ranks all channels by score. ``layer`` ranks channels within their group and
    interleaves the groups by rank fraction, so any prefix prunes (nearly) the same fraction
    of every group. Ties go to the earlier group, then the lower channel index.
    """
    if scope not in ("global", "layer"):
        raise ConfigError(f"prune.scope must be 'global' or 'layer', got {scope!r}")
    keys: list[tuple[float, int, int]] = []
    for gi, (g, s) in enumerate(zip(graph.groups, scores)):
        ranked = sorted(range(g.channels), key=lambda c: (float(s[c]), c))[: g.channels - 1]
        for rank, c in enumerate(ranked):
            keys.append(((rank + 1) / g.channels if scope == "layer" else float(s[c]), gi, c))
    keys.sort()
    return [(gi, c) for _, gi, c in keys]


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
) -> ChannelSelection:
    """Prune the fewest lowest-scored channels that reach ``target``.

    For a channel fraction the count is exact (rounded); for compression and speedup the
    smallest prefix of the pruning order that reaches the target is found by bisection (both
    only grow as channels go). Channels a ``previous`` mask removed stay removed.
    """
    scores = [s.detach().float().cpu().clone() for s in scores]
    before = previously_pruned(graph, previous) if previous is not None else None
    if before is not None:
        for s, flag in zip(scores, before):
            s[flag] = -math.inf  # ranked first, and kept pruned below whatever the order
    order = prune_order(graph, scores, scope)

    def flags_at(count: int) -> list[torch.Tensor]:
        flags = flags_for(graph, order, count)
        return flags if before is None else [f | b for f, b in zip(flags, before)]

    def evaluate(count: int) -> ChannelAchieved:
        return achieved(graph, flags_at(count))

    if target.kind == "channel_fraction":
        count = min(round(target.value * graph.channels_total), len(order))
    else:
        def reached(count: int) -> bool:
            result = evaluate(count)
            return (result.compression if target.kind == "compression" else result.speedup) >= target.value * (1 - 1e-9)

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
) -> ChannelSelection:
    """Score, select and return the channel mask (the model is not modified; apply the mask
    with ``selection.mask.apply(model)``, keep it with KeepPruned, remove it with compact)."""
    graph = channel_graph(model, input_shape, exclude)
    scores = score_channels(strategy, model, graph, batches, loss_fn, seed)
    return select_channels(graph, model, scores, target, scope, previous)


def groups_summary(graph: ChannelGraph) -> Mapping[str, int]:
    """Group root -> channels, for logs and reports."""
    return {g.root: g.channels for g in graph.groups}
