"""Channel (filter) pruning, the adapter to Torch-Pruning: coupled channel groups as parameter slices.

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

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.errors import ConfigError
from prunebench.metrics.flops import dense_macs
from prunebench.modes import eval_mode
from prunebench.pruning.prunable import classifier_name

Role = Literal["out", "in", "norm"]
Scope = Literal["global", "layer"]
Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

INSTALL_HINT = "pip install 'prunebench[structured]'"


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
    """One set of coupled channels. Selection works on *units*: a unit is one channel, or
    several channels that must go together (GroupNorm blocks, a grouped convolution's groups);
    ``channels`` counts units and ``unit_of`` maps each root channel to its unit."""

    root: str  # the module whose output channels number the group's channels
    channels: int
    slices: tuple[ChannelSlice, ...]
    unit_of: tuple[int, ...] = ()  # root channel -> its unit (empty: each channel is a unit)

    @property
    def width(self) -> int:
        """Channels of the group (the root's output channels)."""
        return len(self.unit_of) if self.unit_of else self.channels

    def channels_in(self, flags: torch.Tensor) -> int:
        """Channels held by the flagged units."""
        return int(flags.sum()) if not self.unit_of else int(flags[list(self.unit_of)].sum())

    def root_channels(self, units: Iterable[int]) -> list[int]:
        """The root's output channels that make up ``units``."""
        chosen = set(units)
        if not self.unit_of:
            return sorted(chosen)
        return [c for c, u in enumerate(self.unit_of) if u in chosen]

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
        return sum(g.width for g in self.groups)

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
            raise ConfigError(f"exclude: {name!r} is not a module of the model (in a config, prune.prunable.exclude takes parameter-name globs)")
    return tuple(dict.fromkeys(names))


def layers_matching(model: nn.Module, patterns: Iterable[str]) -> tuple[str, ...]:
    """Modules with a parameter whose name matches a glob of ``patterns`` (the parameter-name
    globs of ``prune.prunable.exclude``): channel pruning keeps their output channels whole."""
    patterns = tuple(patterns)
    return tuple(
        name for name, module in model.named_modules()
        if any(
            fnmatch.fnmatchcase(f"{name}.{p}" if name else p, pattern)
            for p, _ in module.named_parameters(recurse=False) for pattern in patterns
        )
    )


def dependency_graph(model: nn.Module, input_shape: tuple[int, ...], exclude: Iterable[str] = ()) -> tuple[Any, list[Any], tuple[str, ...]]:
    """Torch-Pruning's dependency graph of ``model`` and its prunable groups (full indices)."""
    tp = require_torch_pruning()
    excluded = excluded_layers(model, exclude)
    device = next(model.parameters()).device
    with eval_mode(model):  # tracing runs a forward pass, which must not move BN running statistics
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(1, *input_shape, device=device)
        )
    ignored = [model.get_submodule(name) for name in excluded]
    groups = list(graph.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)))
    return graph, groups, excluded


def is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and module.groups == module.in_channels == module.out_channels


def is_grouped(module: nn.Module) -> bool:
    """A grouped convolution that is not depthwise: each of its groups reads its own inputs."""
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and not is_depthwise(module)


def slices_of(module: nn.Module, name: str, is_out: bool, idxs: list[int], root_idxs: list[int]) -> list[ChannelSlice]:
    """The parameter slices that one Torch-Pruning group item removes."""
    positions = torch.tensor(idxs, dtype=torch.long)
    owner = torch.tensor(root_idxs, dtype=torch.long)
    prefix = f"{name}." if name else ""

    def make(kind: str, dim: int, role: Role, at: torch.Tensor = positions) -> list[ChannelSlice]:
        if not isinstance(getattr(module, kind, None), nn.Parameter):
            return []
        unique, first = unique_first(at)
        return [ChannelSlice(prefix + kind, dim, unique, owner[first], role)]

    if isinstance(module, (_BatchNorm, nn.GroupNorm)):
        return make("weight", 0, "norm") + make("bias", 0, "norm")
    if isinstance(module, nn.LayerNorm):  # Torch-Pruning prunes its last normalized dimension
        dim = len(module.normalized_shape) - 1
        return make("weight", dim, "norm") + make("bias", dim, "norm")
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        if is_out or is_depthwise(module):
            return make("weight", 0, "out") + make("bias", 0, "out")
        if is_grouped(module):  # input channel c is column c mod (inputs per group) of its group's filters
            return make("weight", 1, "in", positions % (module.in_channels // module.groups))
        return make("weight", 1, "in")
    if any(True for _ in module.parameters(recurse=False)):
        raise ConfigError(f"channel pruning does not support {type(module).__name__} layers ({name})")
    return []  # Torch-Pruning's own nodes for additions, activations, reshapes: no parameters


def ties_of(module: nn.Module, is_out: bool, idxs: list[int], root_idxs: list[int]) -> list[list[int]]:
    """Sets of root channels that ``module`` only lets go together, so that the masked model
    computes exactly what the compacted one does:

    - a GroupNorm normalizes each block of channels together: a zeroed channel would still
      count in its block's mean and variance, so whole blocks go;
    - a LayerNorm over the channels normalizes all of them together: none can go;
    - a grouped convolution needs the same channels removed from each of its groups.
    """
    if isinstance(module, nn.GroupNorm):
        block = module.num_channels // module.num_groups
        keys = [i // block for i in idxs]
    elif isinstance(module, nn.LayerNorm):
        keys = [0] * len(idxs)
    elif is_grouped(module):
        per_group = (module.out_channels if is_out else module.in_channels) // module.groups
        keys = [i % per_group for i in idxs]
    else:
        return []
    sets: dict[int, list[int]] = {}
    for key, root in zip(keys, root_idxs):
        sets.setdefault(key, []).append(root)
    return [members for members in sets.values() if len(members) > 1]


def units_of(channels: int, ties: Iterable[list[int]]) -> torch.Tensor:
    """Unit index of each channel: channels tied together (transitively) form one unit,
    numbered in the order of their lowest channel."""
    parent = list(range(channels))

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for members in ties:
        for other in members[1:]:
            a, b = find(members[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = [find(c) for c in range(channels)]
    numbering = {root: index for index, root in enumerate(dict.fromkeys(roots))}
    return torch.tensor([numbering[r] for r in roots], dtype=torch.long)


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
    """prunebench's view of Torch-Pruning groups: parameter slices by name, owned by units
    (a channel, or channels that must go together; see :func:`ties_of`)."""
    names = {module: name for name, module in model.named_modules()}
    groups = []
    for tp_group in tp_groups:
        root = tp_group[0].dep.target.module
        slices: list[ChannelSlice] = []
        ties: list[list[int]] = []
        for item in tp_group.items:
            module = item.dep.target.module
            if module not in names:  # a Torch-Pruning node standing for a functional op
                continue
            is_out = graph.is_out_channel_pruning_fn(item.dep.handler)
            slices += slices_of(module, names[module], is_out, list(item.idxs), list(item.root_idxs))
            ties += ties_of(module, is_out, list(item.idxs), list(item.root_idxs))
        channels = int(graph.get_pruner_of_module(root).get_out_channels(root))
        unit = units_of(channels, ties)
        units = int(unit.max()) + 1 if channels else 0
        if units < channels:
            slices = [ChannelSlice(x.param, x.dim, x.positions, unit[x.owner], x.role) for x in slices]
        unit_of = tuple(unit.tolist()) if units < channels else ()
        groups.append(ChannelGroup(root=names[root], channels=units, slices=merge(slices), unit_of=unit_of))
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


def groups_summary(graph: ChannelGraph) -> Mapping[str, int]:
    """Group root -> channels, for logs and reports."""
    return {g.root: g.channels for g in graph.groups}
