"""Neuron Merging (Kim, Kim, Park & Jeon 2020, "Neuron Merging: Compensating for Pruned Neurons",
NeurIPS), data-free, after channel pruning by any channel strategy (``prune.merge: true``).

A pruned neuron (or filter) n whose pre-activation is a positive multiple s of a kept one's,
z_n = s z_m, has ReLU(z_n) = s ReLU(z_m): the next layer can read it through m by adding s times
its weights for n to those for m, and the network computes what it computed before. Otherwise
the paper approximates: n is expressed through its most similar kept neuron m of the same layer
(largest cosine similarity) with s = ||v_n|| / ||v_m||, where the similarity is at least the
threshold; below it, n is dropped as plain pruning drops it.

What is compared (the paper's released code): for a fully connected layer the neuron's weights
with its bias appended, v = [w, b]; the threshold there is 0.45 (LeNet-300-100 on
Fashion-MNIST, the default here). For a convolution followed by BatchNorm the paper keeps the
cosine of the raw filters and adds a weighted distance between the BatchNorm-transformed biases
(weight 0.15 against 0.85 for the cosine, threshold 0.1 on VGG-16/CIFAR-10). prunebench instead
folds BatchNorm's inference map into the filter, v = a [w, b - mu] + [0, beta] with
a = gamma / sqrt(var + eps), and compares those vectors like a fully connected layer's: one
criterion for both kinds of layer, under which an exact scaled copy (BatchNorm included) is
merged exactly.

Which channels can merge: a group with a single layer writing the channel (not a residual sum of
several, not a depthwise convolution), at most one BatchNorm on it, and channels that are units
of their own (no GroupNorm blocks or grouped convolutions tying them). Other groups are pruned
as usual. The activation between is assumed to be ReLU-like (positively homogeneous), with
BatchNorm, if any, before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.pruning.channels.graph import ChannelGraph, ChannelGroup, ChannelSlice

DEFAULT_THRESHOLD = 0.45  # Kim et al. 2020's released code, LeNet-300-100 on Fashion-MNIST


@dataclass(frozen=True)
class Merge:
    """Pruned channel ``pruned`` is read through kept channel ``kept``, times ``scale`` (> 0)."""

    pruned: int
    kept: int
    scale: float


def by_owner(s: ChannelSlice, channels: int) -> list[torch.Tensor]:
    """The positions of ``s`` that belong to each channel, ascending (a flatten's pixels in order)."""
    return [s.positions[s.owner == c].sort().values for c in range(channels)]


def single(slices: list[ChannelSlice]) -> ChannelSlice | None:
    return slices[0] if len(slices) == 1 else None


def channel_vectors(model: nn.Module, group: ChannelGroup) -> torch.Tensor | None:
    """[w, b] of each channel's writer, BatchNorm folded in: (channels, d); None where the group
    cannot merge (see the module docstring)."""
    writer = single(group.of_role("out"))
    if group.unit_of or writer is None or len(group.of_role("out", "bias")) > 1:
        return None
    norms = {s.param.rpartition(".")[0] for s in group.slices if s.role == "norm"}
    if len(norms) > 1:
        return None
    params = dict(model.named_parameters())
    positions = by_owner(writer, group.channels)
    if any(p.numel() != 1 for p in positions):
        return None
    index = torch.cat(positions)
    weight = params[writer.param].detach().index_select(writer.dim, index).flatten(1).double()
    bias = torch.zeros(group.channels, dtype=torch.float64, device=weight.device)
    bias_slice = single(group.of_role("out", "bias"))
    if bias_slice is not None:
        bias = params[bias_slice.param].detach().index_select(0, torch.cat(by_owner(bias_slice, group.channels))).double()
    if norms:
        norm = model.get_submodule(norms.pop())
        if not isinstance(norm, _BatchNorm) or norm.running_mean is None or norm.running_var is None:
            return None  # batch statistics at inference: no fixed affine map to fold
        norm_slice = next(s for s in group.slices if s.role == "norm")
        at = torch.cat(by_owner(norm_slice, group.channels))
        gamma = norm.weight.detach()[at].double() if norm.weight is not None else torch.ones_like(bias)
        beta = norm.bias.detach()[at].double() if norm.bias is not None else torch.zeros_like(bias)
        scale = gamma / torch.sqrt(norm.running_var[at].double() + norm.eps)
        weight = weight * scale.unsqueeze(1)
        bias = scale * (bias - norm.running_mean[at].double()) + beta
    return torch.cat([weight, bias.unsqueeze(1)], dim=1)


def merge_plan(vectors: torch.Tensor, pruned: list[int], threshold: float) -> list[Merge]:
    """Each pruned channel to its most similar kept one (cosine >= ``threshold``), scaled by the
    ratio of their norms."""
    gone = set(pruned)
    kept = torch.tensor([c for c in range(vectors.shape[0]) if c not in gone], dtype=torch.long)
    if kept.numel() == 0:
        return []
    norms = vectors.norm(dim=1)
    unit = vectors / norms.clamp(min=torch.finfo(vectors.dtype).tiny).unsqueeze(1)
    plan = []
    for n in pruned:
        similarity = unit[kept] @ unit[n]
        best = int(similarity.argmax())
        m = int(kept[best])
        if float(similarity[best]) >= threshold and float(norms[m]) > 0:
            plan.append(Merge(n, m, float(norms[n] / norms[m])))
    return plan


def merge_pruned_channels(
    model: nn.Module, graph: ChannelGraph, pruned: Mapping[str, list[int]], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, int]:
    """Carry each pruned channel's contribution over to the layers reading it, in place.

    Call it before the pruning mask is applied (it reads the pruned filters and the readers'
    weights for them); returns group root -> channels merged.
    """
    params = dict(model.named_parameters())
    merged: dict[str, int] = {}
    for group in graph.groups:
        gone = list(pruned.get(group.root, []))
        vectors = channel_vectors(model, group) if gone else None
        if vectors is None:
            continue
        plan = merge_plan(vectors, gone, threshold)
        readers = [s for s in group.of_role("in")]
        with torch.no_grad():
            for s in readers:
                reader = params[s.param]
                at = by_owner(s, group.channels)
                for step in plan:
                    if at[step.pruned].numel() != at[step.kept].numel():
                        continue
                    carried = reader.index_select(s.dim, at[step.pruned]) * step.scale
                    reader.index_add_(s.dim, at[step.kept], carried)
        merged[group.root] = len(plan) if readers else 0
    return merged
