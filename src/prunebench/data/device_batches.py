"""The device data path: an epoch's batches cut, cropped and flipped on the data's device.

The per-batch path (:func:`prunebench.data.batches` plus :func:`~prunebench.data.augment.random_crop_flip`)
draws each batch's crops on the CPU and copies them to the device batch by batch; on CUDA each
such copy from ordinary host memory waits for the GPU to finish its queue, so the host can never
run ahead of the kernels. Here the whole epoch is drawn up front, from the same generator in
exactly the order the per-batch path draws (the permutation, then each batch's crop offsets and
flips), and sent to the device in one copy. Every batch after that is device work only: index
the uint8 images (:class:`~prunebench.data.pixels.Pixels`) by the permutation, standardize, crop
and flip with the same functions. So for the same seed it yields the same batches bit for bit
(tested on the CPU), without a DataLoader and without a host round trip per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from prunebench.data.augment import PADDING, crop_flip, draw_crop_flip
from prunebench.data.pixels import Pixels


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's draws: the permutation of the training examples and, with augmentation, the
    crop offsets (2, seen) and flips (seen,) of every example the epoch's steps see, in order."""

    order: torch.Tensor
    offsets: torch.Tensor | None
    mirror: torch.Tensor | None

    def to(self, device: torch.device | str) -> EpochPlan:
        return EpochPlan(
            self.order.to(device),
            None if self.offsets is None else self.offsets.to(device),
            None if self.mirror is None else self.mirror.to(device),
        )


def batch_starts(n: int, batch_size: int, steps: int) -> range:
    """Where each of an epoch's ``steps`` batches starts in its permutation of ``n`` examples."""
    return range(0, min(n, steps * batch_size), batch_size)


def plan_epoch(generator: torch.Generator, n: int, batch_size: int, steps: int, augment: bool) -> EpochPlan:
    """The epoch's draws from ``generator`` (a CPU generator), in the per-batch path's order."""
    order = torch.randperm(n, generator=generator)
    if not augment:
        return EpochPlan(order, None, None)
    draws = [draw_crop_flip(min(batch_size, n - start), generator) for start in batch_starts(n, batch_size, steps)]
    offsets = torch.cat([o for o, _ in draws], dim=1)
    mirror = torch.cat([m for _, m in draws if m is not None])
    return EpochPlan(order, offsets, mirror)


def device_batches(
    x: torch.Tensor | Pixels, y: torch.Tensor, plan: EpochPlan, batch_size: int, steps: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) of each of the epoch's batches, made on the device ``plan`` is on."""
    for start in batch_starts(plan.order.shape[0], batch_size, steps):
        key = plan.order[start : start + batch_size]
        inputs = x[key]
        if plan.offsets is not None:
            end = start + key.shape[0]
            mirror = None if plan.mirror is None else plan.mirror[start:end]
            inputs = crop_flip(inputs, plan.offsets[:, start:end], mirror, PADDING)
        yield inputs, y[key]


__all__ = ["EpochPlan", "batch_starts", "device_batches", "plan_epoch"]
