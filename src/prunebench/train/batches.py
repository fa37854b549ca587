"""Where the training loop's batches come from: a :class:`BatchSource` per kind of data.

A classifier's source is its :class:`DataSplits` (:class:`SplitBatches`): a seeded permutation
per epoch, optional crop-flip augmentation, a held-out validation split. A language model's
recovery brings its own source of token batches (``prunebench.experiment.lm.TokenBatches``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal, Protocol

import torch
from torch import nn

from prunebench.spec import TrainSpec
from prunebench.data import DataSplits, batches
from prunebench.data.augment import random_crop_flip
from prunebench.data.device_batches import device_batches, plan_epoch
from prunebench.data.stream import Stream
from prunebench.metrics import evaluate
from prunebench.metrics.accuracy import AccuracyMetrics

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets); ``len(targets)`` examples


class BatchSource(Protocol):
    """The training batches of each epoch, and the validation after it."""

    @property
    def device(self) -> torch.device: ...

    def steps(self, spec: TrainSpec) -> int:
        """Optimizer steps in one epoch."""
        ...

    def examples(self, spec: TrainSpec) -> int:
        """Examples one epoch trains on: the epoch's mean loss is its summed loss over these."""
        ...

    def epoch(self, spec: TrainSpec, generator: torch.Generator, steps: int) -> Iterator[Batch]:
        """The epoch's ``steps`` batches; ``generator`` (seeded once per training) draws any order."""
        ...

    def validate(self, model: nn.Module) -> AccuracyMetrics | None:
        """The held-out figures after an epoch, or None without a validation split."""
        ...


def epoch_steps(examples: int, spec: TrainSpec) -> int:
    """Optimizer steps in one epoch: every batch, or ``max_steps_per_epoch`` of them (a quick check)."""
    steps = math.ceil(examples / spec.batch_size)
    return steps if spec.max_steps_per_epoch is None else min(steps, spec.max_steps_per_epoch)


DataPath = Literal["auto", "host", "device"]


def resolve_data_path(x: object, data_path: DataPath) -> Literal["host", "device"]:
    """``auto``: the device path for in-memory data on a CUDA device, else the per-batch host path.

    Both give the same batches; the device path only saves the per-batch copies from the host.
    Streams are decoded by DataLoader workers on the host, so they take the host path."""
    if data_path not in ("auto", "host", "device"):
        raise ValueError(f"data_path: {data_path!r} is not one of auto, host, device")
    if data_path == "device" and isinstance(x, Stream):
        raise ValueError("data_path: 'device' needs the training data in memory, not streamed from files")
    if data_path != "auto":
        return "host" if data_path == "host" else "device"
    on_cuda = getattr(x, "device", torch.device("cpu")).type == "cuda"
    return "device" if on_cuda and not isinstance(x, Stream) else "host"


class SplitBatches:
    """A classifier's batches from ``data.train_*``: a seeded permutation per epoch, cut and
    augmented where ``data_path`` says (:func:`resolve_data_path`), the same batches on every path."""

    def __init__(self, data: DataSplits, data_path: DataPath = "auto") -> None:
        self.data = data
        self.path = resolve_data_path(data.train_x, data_path)
        self.n = data.train_x.shape[0]

    @property
    def device(self) -> torch.device:
        return self.data.train_x.device

    def steps(self, spec: TrainSpec) -> int:
        return epoch_steps(self.n, spec)

    def examples(self, spec: TrainSpec) -> int:
        return min(self.n, self.steps(spec) * spec.batch_size)

    def epoch(self, spec: TrainSpec, generator: torch.Generator, steps: int) -> Iterator[Batch]:
        data, augment = self.data, spec.augment == "crop-flip"
        if self.path == "device" and not isinstance(data.train_x, Stream):  # (resolve_data_path: never a stream)
            # every draw of the epoch made now, sent to the device in one copy
            plan = plan_epoch(generator, self.n, spec.batch_size, steps, augment).to(data.train_x.device)
            yield from device_batches(data.train_x, data.train_y, plan, spec.batch_size, steps)
            return
        # each batch's crops drawn as it comes (the same draws in the same order)
        order = torch.randperm(self.n, generator=generator).to(data.train_x.device)
        keys = (order[start : start + spec.batch_size] for start in range(0, steps * spec.batch_size, spec.batch_size))
        for inputs, targets in batches(data.train_x, data.train_y, keys):
            yield (random_crop_flip(inputs, generator) if augment else inputs), targets

    def validate(self, model: nn.Module) -> AccuracyMetrics | None:
        return evaluate(model, self.data.val_x, self.data.val_y) if self.data.val_x.shape[0] else None
