"""Physical removal: a channel-masked model becomes a genuinely smaller dense ``nn.Module``.

Torch-Pruning's dependency graph removes each pruned channel from every coupled layer
(filters, BN, readers, residual partners). In eval mode the compact model computes what the
masked model computes, and its parameter and MAC counts are the masked model's effective ones.

Also here: the scratch baselines of Liu et al. 2019 ("Rethinking the Value of Network
Pruning"), which train the compact architecture from a fresh initialization.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.channels import ChannelGroup, dependency_graph, groups_from, rows
from prunebench.pruning.mask import Mask

ScratchMode = Literal["scratch-e", "scratch-b"]


def removable_channels(group: ChannelGroup, mask: Mask) -> list[int]:
    """Units (channels, or channels tied together) of ``group`` whose every slice ``mask`` zeroes: removing them changes nothing.

    A channel the mask only partly zeroes (say, its filter but not its BN shift) still
    carries a signal, so it stays.
    """
    alive = torch.zeros(group.channels, dtype=torch.bool)
    for s in group.slices:
        if s.param not in mask:
            alive[:] = True  # an unmasked slice: nothing of this group is removable
            break
        kept = rows(mask[s.param], s).any(1)
        alive.index_fill_(0, s.owner[kept], True)
    return torch.nonzero(~alive).squeeze(1).tolist()


def removal_plan(
    model: nn.Module, mask: Mask, input_shape: tuple[int, ...], exclude: Iterable[str] = ()
) -> tuple[nn.Module, Any, list[tuple[str, list[int]]], dict[str, torch.Tensor]]:
    """A masked copy of ``model``, its dependency graph, the root channels to remove per
    group root, and per parameter the entries their removal takes away."""
    mask.validate_for(model)
    small = copy.deepcopy(model)
    mask.apply(small)
    tp_graph, tp_groups, _ = dependency_graph(small, tuple(input_shape), exclude)
    removals = []
    removed: dict[str, torch.Tensor] = {}
    for group in groups_from(small, tp_graph, tp_groups):
        channels = removable_channels(group, mask)
        if len(channels) == group.channels:
            raise ConfigError(f"mask removes every channel of {group.root}; keep at least one")
        if channels:
            removals.append((group.root, group.root_channels(channels)))
            mark_removed(removed, group, channels, mask)
    check_channel_mask(mask, removed)
    return small, tp_graph, removals, removed


def compact(model: nn.Module, mask: Mask, input_shape: tuple[int, ...], exclude: Iterable[str] = ()) -> nn.Module:
    """A smaller copy of ``model`` with every channel that ``mask`` fully zeroes removed.

    ``model`` is left as it is. ``exclude`` must match the one used to select. Only a channel
    mask (``prune.structure: channel``) can be compacted: a mask that prunes entries inside
    the channels it keeps (unstructured, N:M, block) is refused with a ConfigError, since the
    smaller model would still hold its zeros and measure as something it is not.
    """
    small, tp_graph, removals, _ = removal_plan(model, mask, input_shape, exclude)
    # Torch-Pruning keeps a GroupNorm's group count; whole blocks go here, so the block size stays
    blocks = {m: m.num_channels // m.num_groups for m in small.modules() if isinstance(m, nn.GroupNorm)}
    for root_name, channels in removals:
        root = small.get_submodule(root_name)
        pruner = tp_graph.get_pruner_of_module(root)
        tp_graph.get_pruning_group(root, pruner.prune_out_channels, channels).prune()
    for norm, block in blocks.items():
        norm.num_groups = norm.num_channels // block
    return small


def kept_indices(removed: torch.Tensor) -> list[torch.Tensor]:
    """Per dimension, the indices that stay: an index goes when every entry through it goes."""
    return [
        torch.nonzero(~removed.movedim(d, 0).reshape(removed.shape[d], -1).all(1)).squeeze(1)
        for d in range(removed.dim())
    ]


def expand(small: nn.Module, model: nn.Module, mask: Mask, input_shape: tuple[int, ...], exclude: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The full-width state of ``model``'s architecture that computes what ``small`` (a
    compaction of ``model`` under ``mask``) computes: its values at the kept positions,
    zeros at the removed ones (BN buffers follow their module's scale)."""
    _, _, _, removed = removal_plan(model, mask, input_shape, exclude)
    full = model.state_dict()
    state = {}
    for name, value in small.state_dict().items():
        module, _, attr = name.rpartition(".")
        owner = name if name in removed else f"{module}.weight" if module else "weight"
        target = torch.zeros_like(full[name])
        if owner in removed and value.dim() > 0:
            where = kept_indices(removed[owner])[: value.dim()]
            grids = torch.meshgrid(*[w.to(target.device) for w in where], indexing="ij")
            if grids[0].shape != value.shape:
                raise ValueError(f"expand: {name} of the compact model does not fit the kept positions")
            target[grids] = value.to(target.dtype)
        else:
            target.copy_(value)
        state[name] = target
    return state


def scratch_start(model: nn.Module, mask: Mask, input_shape: tuple[int, ...], seed: int, exclude: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The scratch baselines' one initialization, as a full-width state: the compact
    architecture freshly initialized by :func:`scratch_model`, its weights at the kept
    positions and zeros elsewhere, so the masked model starts computing what it computes."""
    small = scratch_model(compact(model, mask, input_shape, exclude), seed)
    return expand(small, model, mask, input_shape, exclude)


def mark_removed(removed: dict[str, torch.Tensor], group: ChannelGroup, channels: list[int], mask: Mask) -> None:
    """Flag, per parameter, the entries that removing ``channels`` of ``group`` takes away."""
    gone = torch.zeros(group.channels, dtype=torch.bool)
    gone[channels] = True
    for s in group.slices:
        flags = removed.setdefault(s.param, torch.zeros(mask[s.param].shape, dtype=torch.bool))
        flags.index_fill_(s.dim, s.positions[gone[s.owner]], True)


def check_channel_mask(mask: Mask, removed: dict[str, torch.Tensor]) -> None:
    """Refuse a mask whose pruned entries are not all inside removed channels."""
    for name, keep in mask.items():
        inside = (~keep.cpu()) & ~removed.get(name, torch.zeros_like(keep, device="cpu"))
        if inside.any():
            raise ConfigError(
                f"compact needs a channel mask (prune.structure 'channel'): this mask prunes "
                f"{int(inside.sum())} entries of {name} inside channels it keeps (an unstructured, "
                "N:M or block mask cannot be compacted; measure the masked model instead)"
            )


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Fresh weights for every layer that can reset itself (PyTorch's default initializers,
    which scale with each layer's new fan-in), drawn from ``seed``; BN statistics reset too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    return model


def scratch_model(compact_model: nn.Module, seed: int) -> nn.Module:
    """Liu et al. 2019's scratch baseline: the pruned architecture, freshly initialized."""
    return reinitialize(copy.deepcopy(compact_model), seed)


def scratch_epochs(mode: ScratchMode, dense_epochs: int, dense_macs: int, pruned_macs: int) -> int:
    """Training epochs of a scratch baseline (Liu et al. 2019, Section 4).

    ``scratch-e`` trains as many epochs as the dense model; ``scratch-b`` gets the same compute
    budget, epochs x dense MACs / pruned MACs (rounded to the nearest epoch).
    """
    if dense_epochs < 1:
        raise ConfigError(f"train.epochs must be >= 1, got {dense_epochs}")
    if mode == "scratch-e":
        return dense_epochs
    if mode == "scratch-b":
        if pruned_macs <= 0 or dense_macs < pruned_macs:
            raise ConfigError(f"scratch-b needs 0 < pruned MACs <= dense MACs, got {pruned_macs} and {dense_macs}")
        return round(dense_epochs * dense_macs / pruned_macs)
    raise ConfigError(f"retrain.mode must be 'scratch-e' or 'scratch-b', got {mode!r}")
