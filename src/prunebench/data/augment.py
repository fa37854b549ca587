"""Training-batch augmentation as seeded functions on tensors that stay on their device.

The training loop applies these per batch (``train.augment``); they live with the data, not the
loop, because they are properties of the images, and any dataset's images may use them.
"""

from __future__ import annotations

import torch


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch (N, C, H, W), on whatever device it is on:
    zero-pad ``padding`` pixels on each side, crop a random HxW window per image and
    mirror half the images left-right. Draws come from ``generator`` (a CPU generator), so
    a seeded generator gives the same crops on every device. Zero is the mean pixel after
    per-channel standardization, so the padding adds no bias."""
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip needs a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device) if flip else None
    if padding:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
        cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    if mirror is not None:
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    return x


__all__ = ["random_crop_flip"]
