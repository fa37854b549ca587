"""Training-batch augmentation as seeded functions on tensors that stay on their device.

The training loop applies these per batch (``train.augment``); they live with the data, not the
loop, because they are properties of the images, and any dataset's images may use them.

Drawing and applying are separate so that a whole epoch's draws can be made up front, in the
order the per-batch path makes them, and sent to the device once
(:mod:`prunebench.data.device_batches`): the same crops either way.
"""

from __future__ import annotations

import torch

PADDING = 4  # the standard CIFAR crop: 4 pixels of padding on each side


def draw_crop_flip(
    n: int, generator: torch.Generator, padding: int = PADDING, flip: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The draws of :func:`random_crop_flip` for a batch of ``n``, on the CPU: crop offsets (2, N)
    (rows, then columns) and which images to mirror (N,) bool, or None without ``flip``."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    mirror = torch.rand(n, generator=generator) < 0.5 if flip else None
    return offsets, mirror


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, mirror: torch.Tensor | None, padding: int = PADDING) -> torch.Tensor:
    """Zero-pad the batch ``x`` (N, C, H, W) by ``padding``, take the HxW window at ``offsets``
    (2, N) of each image and mirror the images where ``mirror`` is true; all on ``x``'s device."""
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip needs a batch (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    offsets = offsets.to(x.device)
    if padding:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
        cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    if mirror is not None:
        x = torch.where(mirror.to(x.device)[:, None, None, None], x.flip(3), x)
    return x


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = PADDING, flip: bool = True) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch (N, C, H, W), on whatever device it is on:
    zero-pad ``padding`` pixels on each side, crop a random HxW window per image and
    mirror half the images left-right. Draws come from ``generator`` (a CPU generator), so
    a seeded generator gives the same crops on every device. Zero is the mean pixel after
    per-channel standardization, so the padding adds no bias."""
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip needs a batch (N, C, H, W), got shape {tuple(x.shape)}")
    offsets, mirror = draw_crop_flip(x.shape[0], generator, padding, flip)
    return crop_flip(x, offsets, mirror, padding)


__all__ = ["PADDING", "crop_flip", "draw_crop_flip", "random_crop_flip"]
