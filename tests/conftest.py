"""Shared fixtures: tiny models and data, and the real datasets when ../shared/data has them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from prunebench.data import DataSplits, load_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNEBENCH_TEST_DATA", REPO.parent / "shared" / "data"))


def has_dataset(name: str) -> bool:
    return (SHARED_DATA / name / "train-images-idx3-ubyte.gz").is_file()


@pytest.fixture(scope="session")
def synthetic() -> DataSplits:
    return load_dataset("synthetic", val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def mnist() -> DataSplits:
    if not has_dataset("mnist"):
        pytest.skip(f"MNIST not found in {SHARED_DATA}")
    return load_dataset("mnist", data_dir=SHARED_DATA, download=False)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the user's PRUNEBENCH_DATA and never download."""
    monkeypatch.delenv("PRUNEBENCH_DATA", raising=False)
    torch.manual_seed(0)
