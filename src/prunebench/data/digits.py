"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no files or network."""

from __future__ import annotations

from pathlib import Path

import torch

from prunebench.data.base import DATASETS, RawDataset, standardize

TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the train/test split is part of the dataset's definition, not of a run


@DATASETS.register("digits")
def load_digits(data_dir: Path, download: bool) -> RawDataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = round(len(y) * TEST_FRACTION)
    test_idx, train_idx = order[:n_test], order[n_test:]
    train_x, test_x = standardize(x[train_idx], x[test_idx])
    return RawDataset(train_x, y[train_idx], test_x, y[test_idx], num_classes=10)
