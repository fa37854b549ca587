"""The Mask: parameter name -> boolean tensor of the parameter's shape (True = kept)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn


class Mask(Mapping[str, torch.Tensor]):
    """An immutable set of boolean keep-masks, validated on creation.

    Across pruning rounds a mask only shrinks: combine rounds with ``old & new``.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for name, tensor in tensors.items():
            if tensor.dtype != torch.bool:
                raise TypeError(f"mask for {name!r} must be bool, got {tensor.dtype}")
        self._tensors = {name: tensor.detach() for name, tensor in tensors.items()}

    @classmethod
    def ones(cls, params: Mapping[str, torch.Tensor]) -> Mask:
        """Keep everything: the mask of an unpruned model."""
        return cls({name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()})

    @classmethod
    def from_nonzero(cls, params: Mapping[str, torch.Tensor]) -> Mask:
        """Read a mask off weights that are already pruned (zeros = pruned)."""
        return cls({name: p.detach() != 0 for name, p in params.items()})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __and__(self, other: Mask) -> Mask:
        if set(self) != set(other):
            raise ValueError("masks cover different parameters")
        return Mask({name: self[name] & other[name] for name in self})

    def validate_for(self, model: nn.Module) -> None:
        """Raise unless every masked name is a parameter of ``model`` with the same shape."""
        params = dict(model.named_parameters())
        for name, tensor in self._tensors.items():
            if name not in params:
                raise ValueError(f"mask names {name!r}, which is not a parameter of the model")
            if params[name].shape != tensor.shape:
                raise ValueError(
                    f"mask for {name!r} has shape {tuple(tensor.shape)}, "
                    f"parameter has {tuple(params[name].shape)}"
                )

    def is_subset_of(self, other: Mask) -> bool:
        """True when everything this mask keeps is also kept by ``other``."""
        return set(self) == set(other) and all(
            not bool((self[name] & ~other[name]).any()) for name in self
        )

    @property
    def total(self) -> int:
        return sum(t.numel() for t in self._tensors.values())

    @property
    def kept(self) -> int:
        return sum(int(torch.count_nonzero(t)) for t in self._tensors.values())

    @property
    def pruned(self) -> int:
        return self.total - self.kept

    @property
    def sparsity(self) -> float:
        """Pruned / maskable entries."""
        return self.pruned / self.total if self.total else 0.0

    def layer_sparsity(self) -> dict[str, float]:
        return {name: 1.0 - float(t.float().mean()) for name, t in self._tensors.items()}

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the pruned entries of ``model``'s parameters in place."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, keep in self._tensors.items():
                zero_pruned(params[name], keep.to(params[name].device))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._tensors)


# Entries a block of zero_pruned covers: its float copy of the mask stays at 4 MiB.
APPLY_BLOCK = 1 << 20


def zero_pruned(param: torch.Tensor, keep: torch.Tensor) -> None:
    """``param *= keep`` in place, block by block. A CPU multiply by a boolean tensor first copies
    it to the parameter's dtype: whole, that copy is as large as the parameter, and a few of them
    freed in turn leave the heap holding a third of a large model's bytes."""
    if not param.is_contiguous() or param.numel() <= APPLY_BLOCK:
        param.mul_(keep)
        return
    flat, flat_keep = param.view(-1), keep.reshape(-1)
    for start in range(0, flat.numel(), APPLY_BLOCK):
        flat[start : start + APPLY_BLOCK].mul_(flat_keep[start : start + APPLY_BLOCK])


def shuffled_within(mask: Mask, generator: torch.Generator) -> Mask:
    """``mask`` with each tensor's entries permuted uniformly at random within that tensor: every
    tensor keeps exactly as many entries as before, at random positions (the layer-shuffle control
    of Frankle et al. 2021: the method's per-layer densities without its choice of weights)."""
    shuffled = {}
    for name, keep in mask.items():
        flat = keep.flatten()
        order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
        shuffled[name] = flat[order].view_as(keep)
    return Mask(shuffled)
