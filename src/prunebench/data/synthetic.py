"""A tiny, learnable synthetic task for tests: Gaussian class clusters, no files needed."""

from __future__ import annotations

from pathlib import Path

import torch

from prunebench.data.base import DATASETS, RawDataset

NUM_CLASSES = 10
FEATURES = 64  # 8x8, the same shape as digits, so every small model accepts both


@DATASETS.register("synthetic")
def load_synthetic(data_dir: Path, download: bool) -> RawDataset:
    generator = torch.Generator().manual_seed(1234)
    centers = torch.randn(NUM_CLASSES, FEATURES, generator=generator) * 1.5

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % NUM_CLASSES
        x = centers[y] + torch.randn(n, FEATURES, generator=generator)
        return x.reshape(n, 1, 8, 8), y

    train_x, train_y = sample(1200)
    test_x, test_y = sample(400)
    return RawDataset(train_x, train_y, test_x, test_y, NUM_CLASSES)
