"""Shared fixtures: tiny models and data, and the real datasets when a data folder has them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from prunebench.data import DataSplits, load_dataset

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir(environ: Mapping[str, str], repo: Path = REPO) -> Path:
    """Where the real datasets are: $PRUNEBENCH_TEST_DATA, else $PRUNEBENCH_DATA, else ../shared/data."""
    for variable in ("PRUNEBENCH_TEST_DATA", "PRUNEBENCH_DATA"):
        if environ.get(variable):
            return Path(environ[variable])
    return repo.parent / "shared" / "data"


# Read once, before the fixture below hides PRUNEBENCH_DATA from the tests themselves.
SHARED_DATA = shared_data_dir(os.environ)


def has_dataset(name: str) -> bool:
    """Whether SHARED_DATA holds ``name``, judged by file names only (nothing is decoded)."""
    if name == "cifar10":
        return any((SHARED_DATA / f / "cifar-10-binary.tar.xz").is_file() for f in ("cifar-10", "cifar10"))
    return (SHARED_DATA / name / "train-images-idx3-ubyte.gz").is_file()


@pytest.fixture(scope="session")
def synthetic() -> DataSplits:
    return load_dataset("synthetic", val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def mnist() -> DataSplits:
    if not has_dataset("mnist"):
        pytest.skip(f"MNIST not found in {SHARED_DATA}")
    return load_dataset("mnist", data_dir=SHARED_DATA, download=False)


@pytest.fixture(scope="session")
def decoded_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decoded-data cache for the session: real CIFAR-10 is decoded once, not per test."""
    return tmp_path_factory.mktemp("decoded")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, decoded_cache: Path) -> None:
    """Tests never read the user's PRUNEBENCH_DATA, never write the user's cache and never download."""
    monkeypatch.delenv("PRUNEBENCH_DATA", raising=False)
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(decoded_cache))
    torch.manual_seed(0)
