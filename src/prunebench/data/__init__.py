"""Datasets: in-memory tensors on the target device (or streams read on demand), with a held-out validation split."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from prunebench.data import cifar, digits, idx, image_folder, synthetic  # noqa: F401  (registers the datasets)
from prunebench.data.base import DATASETS, DataSplits, Images, RawDataset, settle, split_validation, take_subset
from prunebench.data.stream import Stream, batches

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
    streaming: bool = False,
    workers: int = 0,
) -> DataSplits:
    """Load a registered dataset and hold out ``val_fraction`` of its training set.

    ``subset``: train on that many of the remaining examples (seeded by ``seed``), for a quick check.
    ``streaming``: a dataset read from files (an image folder, a source returning a :class:`Stream`)
    stays in its files and ``workers`` processes decode each batch; otherwise it is read whole into
    memory. Both give the same batches; datasets that are tensors already ignore it.
    """
    DATASETS.get(name)  # an unknown name fails here, with close matches
    where = (Path(data_dir) if data_dir else default_data_dir()).resolve()
    raw = load_raw(name, where, download, streaming, workers)
    return take_subset(split_validation(raw, val_fraction, seed, name=name), subset, seed).to(device)


@lru_cache(maxsize=2)
def load_raw(name: str, data_dir: Path, download: bool, streaming: bool = False, workers: int = 0) -> RawDataset:
    """Decoded, checksum-verified files, kept per process: a sweep's runs share one read.

    Only successful loads are kept; splits copy what they take, so runs cannot alter it.
    """
    return settle(DATASETS.get(name)(data_dir, download), streaming, workers)


__all__ = ["DATASETS", "DATA_ENV", "DataSplits", "Images", "RawDataset", "Stream", "batches", "default_data_dir", "load_dataset"]
