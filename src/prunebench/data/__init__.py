"""Datasets: in-memory tensors on the target device, with a held-out validation split."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from prunebench.data import cifar, digits, idx, image_folder, synthetic  # noqa: F401  (registers the datasets)
from prunebench.data.base import DATASETS, DataSplits, RawDataset, split_validation, take_subset

DATA_ENV = "PRUNEBENCH_DATA"


def default_data_dir() -> Path:
    """``$PRUNEBENCH_DATA`` if set, else ``~/.cache/prunebench/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path.home() / ".cache" / "prunebench" / "data"


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    download: bool = True,
    subset: int | None = None,
) -> DataSplits:
    """Load a registered dataset and hold out ``val_fraction`` of its training set.

    ``subset``: train on that many of the remaining examples (seeded by ``seed``), for a quick check.
    """
    DATASETS.get(name)  # an unknown name fails here, with close matches
    raw = load_raw(name, (Path(data_dir) if data_dir else default_data_dir()).resolve(), download)
    return take_subset(split_validation(raw, val_fraction, seed, name=name), subset, seed).to(device)


@lru_cache(maxsize=2)
def load_raw(name: str, data_dir: Path, download: bool) -> RawDataset:
    """Decoded, checksum-verified files, kept per process: a sweep's runs share one read.

    Only successful loads are kept; splits copy what they take, so runs cannot alter it.
    """
    return DATASETS.get(name)(data_dir, download)


__all__ = ["DATASETS", "DATA_ENV", "DataSplits", "RawDataset", "default_data_dir", "load_dataset"]
