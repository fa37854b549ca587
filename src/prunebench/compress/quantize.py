"""Trained quantization by weight sharing (Han et al. 2016, section 3).

Per layer, the surviving weights are clustered by 1-D k-means with linear initialization
(centroids evenly spaced between the smallest and the largest weight: section 3.2 finds it
keeps the rare large weights, which matter most, better than random or density-based
initialization). Each weight is then its cluster's centroid, and fine-tuning moves each centroid
by the sum of its members' gradients (section 3.3): the layer's weight becomes
``where(keep, codebook[index], 0)``, whose gradient with respect to ``codebook`` is exactly that
sum, and pruned entries stay exactly zero whatever the optimizer does.

k-means is Lloyd's algorithm written out for one dimension (sorted centroids, midpoint
boundaries, ties to the lower centroid; an empty cluster keeps its centroid) so that its result
is the hand computation; a general library's k-means relocates empty clusters and would move a
linear initialization.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

MAX_ITERATIONS = 300


def layer_kind(module: nn.Module) -> str | None:
    """'conv' or 'linear' for a layer whose weight can be shared, else None."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return None


def linear_kmeans(values: torch.Tensor, clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids, index of each value's centroid) of 1-D k-means from a linear initialization.

    ``clusters`` centroids start evenly spaced from ``values.min()`` to ``values.max()``; Lloyd
    iterations run until no value changes cluster. Computed in float64.
    """
    if values.numel() == 0:
        return torch.zeros(0, dtype=values.dtype), torch.zeros(0, dtype=torch.long)
    x = values.detach().flatten().to(torch.float64).cpu()
    centroids = torch.linspace(float(x.min()), float(x.max()), clusters, dtype=torch.float64)
    index = assign(x, centroids)
    for _ in range(MAX_ITERATIONS):
        counts = torch.bincount(index, minlength=clusters)
        sums = torch.zeros(clusters, dtype=torch.float64).index_add_(0, index, x)
        filled = counts > 0
        centroids = torch.where(filled, sums / counts.clamp(min=1), centroids)
        updated = assign(x, centroids)
        if torch.equal(updated, index):
            break
        index = updated
    return centroids.to(values.dtype), index


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of the sorted ``centroids`` for each value (a tie goes to the lower one)."""
    boundaries = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(x, boundaries, right=False)


class SharedWeight(nn.Module):
    """A layer's weight as ``where(keep, codebook[index], 0)``: the codebook is what trains."""

    def __init__(self, codebook: torch.Tensor, index: torch.Tensor, keep: torch.Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook.clone())
        self.register_buffer("index", index.clone())
        self.register_buffer("keep", keep.clone())

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        shared = self.codebook[self.index]
        return torch.where(self.keep, shared, torch.zeros((), dtype=shared.dtype, device=shared.device))


@dataclass(frozen=True)
class SharedLayer:
    """One quantized layer: its codebook and, for every entry, a centroid index (0 where pruned)."""

    kind: str
    bits: int
    codebook: torch.Tensor  # (clusters,)
    index: torch.Tensor  # the weight's shape, long
    keep: torch.Tensor  # the weight's shape, bool

    def weight(self) -> torch.Tensor:
        return torch.where(self.keep, self.codebook[self.index], torch.zeros((), dtype=self.codebook.dtype))


def quantize_layer(weight: torch.Tensor, keep: torch.Tensor, kind: str, bits: int) -> SharedLayer:
    """k-means with 2**bits clusters (fewer when fewer weights survive) over the kept weights."""
    survivors = weight.detach().cpu()[keep.cpu()]
    clusters = min(2**bits, survivors.numel())
    centroids, members = linear_kmeans(survivors, clusters)
    index = torch.zeros(weight.shape, dtype=torch.long)
    index[keep.cpu()] = members
    return SharedLayer(kind, bits, centroids.to(weight.dtype), index, keep.cpu().clone())


def quantizable_layers(model: nn.Module, bits: Mapping[str, int]) -> dict[str, tuple[nn.Module, str]]:
    """Parameter name of each layer weight whose kind has bits -> (module, kind)."""
    found = {}
    for name, module in model.named_modules():
        kind = layer_kind(module)
        if kind in bits and isinstance(getattr(module, "weight", None), nn.Parameter):
            found[f"{name}.weight" if name else "weight"] = (module, kind)
    return found


def owner(model: nn.Module, name: str) -> nn.Module:
    """The module that holds parameter ``name`` (``"0.weight"`` -> ``model[0]``)."""
    return model.get_submodule(name.rpartition(".")[0])


@contextmanager
def shared_weights(model: nn.Module, layers: Mapping[str, SharedLayer]) -> Iterator[dict[str, SharedWeight]]:
    """Within the block, each named layer's weight is its SharedWeight and only codebooks train.

    On exit the shared weights are written back as plain parameters (the usual state_dict keys)
    and every other parameter's ``requires_grad`` is restored.
    """
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    attached: dict[str, SharedWeight] = {}
    try:
        for name, layer in layers.items():
            module = owner(model, name)
            device = module.weight.device
            shared = SharedWeight(layer.codebook.to(device), layer.index.to(device), layer.keep.to(device))
            parametrize.register_parametrization(module, "weight", shared)
            module.parametrizations.weight.original.requires_grad_(False)
            attached[name] = shared
        yield attached
    finally:
        for name in attached:
            parametrize.remove_parametrizations(owner(model, name), "weight", leave_parametrized=True)
        for name, p in model.named_parameters():
            p.requires_grad_(trainable.get(name, True))
