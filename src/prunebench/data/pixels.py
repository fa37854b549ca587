"""Images kept as uint8 and standardized one batch at a time: a quarter of float32's memory.

CIFAR-10 as float32 is 737 MB; as uint8 it is 184 MB, on the CPU or on a GPU alike. A
:class:`Pixels` stands where a dataset's image tensor would: indexing it (a slice, an index
tensor, an int) returns float32 images standardized by the training set's per-channel mean and
std, so training, evaluation and scoring batches look exactly as before; :meth:`take` selects
examples (a validation split, a subset) without copying a pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

# Values per chunk when computing the statistics: a small float64 temporary (250 CIFAR images).
STATS_CHUNK_VALUES = 250 * 3 * 32 * 32


def stats_chunk(example_shape: tuple[int, ...]) -> int:
    """Images per statistics chunk for images of ``example_shape``: at least one."""
    return max(1, STATS_CHUNK_VALUES // max(1, math.prod(example_shape)))


class Pixels:
    """``pixels`` (N, C, H, W) uint8, seen through ``index`` (None: all), standardized per channel."""

    def __init__(
        self, pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, index: torch.Tensor | None = None
    ) -> None:
        if pixels.dtype != torch.uint8 or pixels.ndim != 4:
            raise ValueError(f"Pixels holds (N, C, H, W) uint8 images, not {tuple(pixels.shape)} {pixels.dtype}")
        self.pixels, self.index = pixels, index
        self.mean = mean.reshape(1, -1, 1, 1).to(pixels.device, torch.float32)
        self.std = std.reshape(1, -1, 1, 1).to(pixels.device, torch.float32)

    @classmethod
    def standardized_by(cls, train: torch.Tensor, *others: torch.Tensor) -> list[Pixels]:
        """``train`` and ``others`` scaled to [0, 1], then by ``train``'s per-channel mean and std
        (the unbiased std, as ``torch.std``), each computed in float64 chunk by chunk."""
        size = stats_chunk(tuple(train.shape[1:]))
        mean, std = channel_stats(train[start : start + size] for start in range(0, train.shape[0], size))
        return [cls(t, mean, std) for t in (train, *others)]

    def __len__(self) -> int:
        return self.pixels.shape[0] if self.index is None else self.index.shape[0]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.pixels.shape[1:]))

    @property
    def ndim(self) -> int:
        return self.pixels.ndim

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32  # what indexing returns

    @property
    def nbytes(self) -> int:
        """Bytes of the uint8 images held (shared by every split taken from them)."""
        return self.pixels.numel()

    def _rows(self, key: Any) -> Any:
        if isinstance(key, torch.Tensor):
            key = key.to(self.device)
        return key if self.index is None else self.index[key]

    def __getitem__(self, key: Any) -> torch.Tensor:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):  # x[0, 0]: the examples first, then the rest on their floats
            key, rest = key[0], key[1:]
        batch = standardize(self.pixels[self._rows(key)], self.mean, self.std)
        return batch[rest] if rest else batch

    def take(self, index: torch.Tensor) -> Pixels:
        """The examples at ``index`` (into this view), sharing these pixels."""
        index = index.to(self.device)
        return Pixels(self.pixels, self.mean, self.std, index if self.index is None else self.index[index])

    def to(self, device: torch.device | str) -> Pixels:
        index = None if self.index is None else self.index.to(device)
        return Pixels(self.pixels.to(device), self.mean, self.std, index)

    def float(self) -> torch.Tensor:
        """Every image, standardized, as one float32 tensor (four times the memory)."""
        return self[:]


def channel_stats(chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased std (float64) of uint8 (N, C, H, W) chunks scaled to [0, 1].

    The sums run chunk by chunk in the order given, so the same chunks give the same bits
    whether they come from memory or are decoded from files one chunk at a time."""
    total = squares = None
    count = 0
    for chunk in chunks:
        values = chunk.to(torch.float64) / 255.0
        if total is None:
            total = torch.zeros(values.shape[1], dtype=torch.float64)
            squares = torch.zeros_like(total)
        total += values.sum(dim=(0, 2, 3))
        squares += (values * values).sum(dim=(0, 2, 3))
        count += values.shape[0] * values.shape[2] * values.shape[3]
    if total is None or squares is None:
        raise ValueError("channel statistics need at least one image")
    mean = total / count
    std = ((squares - count * mean * mean) / max(count - 1, 1)).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean, std


def standardize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) or one (C, H, W) to [0, 1], then by ``mean`` and ``std`` of shape
    (1, C, 1, 1) float32 on the images' device: the one formula of every standardized batch."""
    values = images.to(torch.float32) / 255.0
    return (values - mean[0]) / std[0] if values.ndim == 3 else (values - mean) / std


def take(x: Any, index: torch.Tensor) -> Any:
    """``x[index]`` for a tensor; a view sharing the pixels (or the files) for :class:`Pixels` and streams."""
    return x[index] if isinstance(x, torch.Tensor) else x.take(index)
