"""Datasets as in-memory tensors (or streams read on demand), with a seeded validation split held out of training data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from prunebench.data.pixels import Pixels, take
from prunebench.data.stream import Stream, in_memory, streamed
from prunebench.errors import ConfigError
from prunebench.registry import Registry


# float inputs, uint8 images standardized per batch (CIFAR), or examples read from files on demand
Images = torch.Tensor | Pixels | Stream


@dataclass(frozen=True)
class RawDataset:
    """What a dataset source returns: official train and test sets, before any split."""

    train_x: Images
    train_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    num_classes: int
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test tensors (or streams) on one device.

    The validation split is carved out of the official training set, so the test set is
    touched only by the final evaluation.
    """

    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    num_classes: int
    name: str = "custom"
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str) -> DataSplits:
        moved = {
            key: getattr(self, key).to(device)
            for key in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
        }
        return DataSplits(**moved, num_classes=self.num_classes, name=self.name, checksums=self.checksums)

    @classmethod
    def from_tensors(
        cls,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        val_fraction: float = 0.1,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> DataSplits:
        """Wrap a user's own tensors; labels are class indices.

        Refused with a :class:`ConfigError` naming the argument: a split that is not a pair of
        tensors, is empty, or whose ``x`` and ``y`` differ in length; labels that are not whole
        numbers in one dimension, negative, or (with ``num_classes``) not below ``num_classes``;
        a ``val_fraction`` that leaves no training example.
        """
        train_y, test_y = _labels("train", train), _labels("test", test)
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise ConfigError(f"num_classes: {num_classes!r} is not a positive integer")
        top = int(torch.cat([train_y, test_y.to(train_y.device)]).max())
        if num_classes is not None and top >= num_classes:
            raise ConfigError(f"num_classes: label {top} is not below num_classes={num_classes}; labels are 0 to {num_classes - 1}")
        if not (isinstance(val_fraction, (int, float)) and 0.0 <= val_fraction < 1.0) or round(len(train_y) * val_fraction) >= len(train_y):
            raise ConfigError(f"val_fraction: {val_fraction!r} must be in [0, 1) and leave a training example of {len(train_y)}")
        raw = RawDataset(
            train_x=train[0], train_y=train_y, test_x=test[0], test_y=test_y, num_classes=num_classes or top + 1,
        )
        return split_validation(raw, val_fraction, seed, name="custom")


def _labels(split: str, pair: object) -> torch.Tensor:
    """The labels of ``pair`` as int64 class indices, after checking the pair can be a split."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, torch.Tensor) for t in pair)):
        raise ConfigError(f"{split}: expected a pair (x, y) of tensors, got {type(pair).__name__}")
    x, y = pair
    if x.ndim == 0 or y.ndim != 1:
        raise ConfigError(f"{split}: x needs an example dimension and y one label per example, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) != len(y):
        raise ConfigError(f"{split}: x has {len(x)} examples but y has {len(y)} labels; they must be the same length")
    if len(y) == 0:
        raise ConfigError(f"{split}: no examples; each split needs at least one")
    # .long() would silently truncate 0.5 to class 0; a bool tensor is not a class index either
    if y.dtype == torch.bool or y.is_complex() or (y.is_floating_point() and not bool((y == y.round()).all() and y.isfinite().all())):
        raise ConfigError(f"{split}: labels must be whole-number class indices, got {y.dtype}")
    if int(y.min()) < 0:
        raise ConfigError(f"{split}: label {int(y.min())} is negative; labels are class indices from 0")
    return y.long()


def split_validation(raw: RawDataset, val_fraction: float, seed: int, name: str) -> DataSplits:
    """Hold out a seeded random ``val_fraction`` of the training set for validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = raw.train_x.shape[0]
    n_val = round(n * val_fraction)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return DataSplits(
        train_x=take(raw.train_x, train_idx),
        train_y=raw.train_y[train_idx],
        val_x=take(raw.train_x, val_idx),
        val_y=raw.train_y[val_idx],
        test_x=raw.test_x,
        test_y=raw.test_y,
        num_classes=raw.num_classes,
        name=name,
        checksums=raw.checksums,
    )


def take_subset(splits: DataSplits, subset: int | None, seed: int) -> DataSplits:
    """A seeded random ``subset`` of the training examples (validation and test kept whole): a quick check."""
    if subset is None:
        return splits
    n = splits.train_x.shape[0]
    if subset > n:
        raise ConfigError(f"subset: {subset} is more than the {n} training examples of {splits.name} (allowed: 1 to {n})")
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subset].sort().values
    return replace(splits, train_x=take(splits.train_x, keep), train_y=splits.train_y[keep])


def settle(raw: RawDataset, streaming: bool, workers: int) -> RawDataset:
    """A source's streams read whole into memory (the default), or kept as streams (``streaming``)
    that ``workers`` processes decode batch by batch; either way uint8 images are standardized by
    the training set's per-channel statistics. Tensors are kept as they are."""
    if not isinstance(raw.train_x, Stream) or not isinstance(raw.test_x, Stream):
        return raw
    train, test = raw.train_x.with_workers(workers), raw.test_x.with_workers(workers)
    train_x, test_x = streamed(train, test) if streaming else in_memory(train, test)
    return replace(raw, train_x=train_x, test_x=test_x)


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale by the training set's mean and std (one scalar each), the same for every split."""
    mean, std = train.mean(), train.std()
    return [(t - mean) / std for t in (train, *others)]


# A dataset source takes the data directory and whether it may download, returns raw tensors.
DatasetSource = Callable[[Path, bool], RawDataset]
DATASETS: Registry[DatasetSource] = Registry("dataset")
