"""Images kept as uint8 and standardized one batch at a time: a quarter of float32's memory.

CIFAR-10 as float32 is 737 MB; as uint8 it is 184 MB, on the CPU or on a GPU alike. A
:class:`Pixels` stands where a dataset's image tensor would: indexing it (a slice, an index
tensor, an int) returns float32 images standardized by the training set's per-channel mean and
std, so training, evaluation and scoring batches look exactly as before; :meth:`take` selects
examples (a validation split, a subset) without copying a pixel.
"""

from __future__ import annotations

from typing import Any

import torch

STATS_CHUNK = 250  # images per chunk when computing the statistics: a small float64 temporary


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
        total = torch.zeros(train.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, train.shape[0], STATS_CHUNK):
            chunk = train[start : start + STATS_CHUNK].to(torch.float64) / 255.0
            total += chunk.sum(dim=(0, 2, 3))
            squares += (chunk * chunk).sum(dim=(0, 2, 3))
        count = train.shape[0] * train.shape[2] * train.shape[3]
        mean = total / count
        std = ((squares - count * mean * mean) / max(count - 1, 1)).clamp_min(0).sqrt().clamp_min(1e-6)
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
        images = self.pixels[self._rows(key)].to(torch.float32) / 255.0
        mean, std = (self.mean[0], self.std[0]) if images.ndim == 3 else (self.mean, self.std)
        batch = (images - mean) / std
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


def take(x: torch.Tensor | Pixels, index: torch.Tensor) -> torch.Tensor | Pixels:
    """``x[index]`` for a tensor; a view sharing the pixels for :class:`Pixels`."""
    return x.take(index) if isinstance(x, Pixels) else x[index]
