"""Streaming data: examples decoded from files batch by batch give the in-memory path's batches,
its training bit for bit, and train a folder larger than the memory it is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.spec import TrainSpec
from prunebench.data import DataSplits, Stream, batches
from prunebench.data.base import RawDataset, settle, split_validation
from prunebench.data.pixels import Pixels
from prunebench.metrics import evaluate
from prunebench.train.loop import train

image_module = pytest.importorskip("PIL.Image")


def write_folder(root: Path, per_class: int, side: int, classes: int = 2, val: int = 3) -> None:
    """``classes`` class folders of small random PNGs under root/train and root/val."""
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", per_class), ("val", val)):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(count):
                pixels = torch.randint(0, 256, (side, side, 3), generator=generator, dtype=torch.uint8)
                image_module.fromarray(pixels.numpy()).save(root / split / f"c{c}" / f"{i:05d}.png")


def folder_splits(root: Path, streaming: bool, workers: int = 0) -> DataSplits:
    from prunebench.data.image_folder import load_image_folder

    raw = settle(load_image_folder(root, size=8, resize=8), streaming, workers)
    return split_validation(raw, 0.2, seed=0, name="image-folder")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    write_folder(root, per_class=20, side=10)
    return root


def test_streamed_batches_are_the_in_memory_batches(folder: Path) -> None:
    memory, streamed = folder_splits(folder, streaming=False), folder_splits(folder, streaming=True, workers=2)
    assert isinstance(memory.train_x, Pixels) and isinstance(streamed.train_x, Stream)
    assert streamed.train_x.shape == memory.train_x.shape == (32, 3, 8, 8)
    assert streamed.train_x.nbytes == 0 < memory.train_x.nbytes  # the images stay in their files
    order = torch.randperm(32, generator=torch.Generator().manual_seed(3))
    keys = [order[s : s + 5] for s in range(0, 32, 5)]
    pairs = list(zip(batches(memory.train_x, memory.train_y, keys), batches(streamed.train_x, streamed.train_y, keys)))
    assert len(pairs) == 7
    for (x_mem, y_mem), (x_str, y_str) in pairs:
        assert x_str.dtype == torch.float32 and x_str.equal(x_mem) and y_str.equal(y_mem)
    assert abs(float(streamed.train_x[:].mean())) < 0.1  # standardized by the training statistics
    assert streamed.val_x[1:3].equal(memory.val_x[1:3]) and streamed.test_x[0].equal(memory.test_x[0])


def test_streamed_training_is_bit_identical(folder: Path) -> None:
    spec = TrainSpec(epochs=2, batch_size=6, lr=0.1, augment="crop-flip")
    weights, accuracy = [], []
    for streaming, workers in ((False, 0), (True, 2)):
        data = folder_splits(folder, streaming, workers)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        log = train(model, data, spec, seed=1)
        weights.append([p.detach().clone() for p in model.parameters()])
        accuracy.append((evaluate(model, data.test_x, data.test_y), log.epochs[-1].train_loss, log.epochs[-1].val_loss))
    assert all(a.equal(b) for a, b in zip(*weights))
    assert accuracy[0] == accuracy[1]


def test_any_dataset_of_tensors_streams() -> None:
    class Squares(torch.utils.data.Dataset[torch.Tensor]):
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.full((1, 2, 2), float(i))

    labels = torch.arange(10) % 2
    raw = RawDataset(Stream.of(Squares()), labels, Stream.of(Squares()), labels, num_classes=2)
    streamed, memory = settle(raw, streaming=True, workers=0), settle(raw, streaming=False, workers=0)
    assert isinstance(streamed.train_x, Stream) and isinstance(memory.train_x, torch.Tensor)
    assert streamed.train_x[torch.tensor([7, 2])][:, 0, 0, 0].tolist() == [7.0, 2.0]  # float examples as they come
    assert memory.train_x.equal(streamed.train_x[:])


MEASURE = """
import json, sys
import torch
from torch import nn
from prunebench.spec import TrainSpec
from prunebench.data.base import settle, split_validation
from prunebench.data.image_folder import load_image_folder
from prunebench.train.loop import train

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

torch.manual_seed(0)
model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
train(model, split_validation(settle(load_image_folder(__import__("pathlib").Path(sys.argv[1]) / "small", size=128, resize=128),
      False, 0), 0.0, 0, "warm"), TrainSpec(epochs=1, batch_size=4), seed=0)  # warm every code path up
base = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # restart the peak (VmHWM) from here
raw = settle(load_image_folder(__import__("pathlib").Path(sys.argv[1]) / "big", size=128, resize=128), sys.argv[2] == "stream", 0)
data = split_validation(raw, 0.0, 0, "big")
log = train(model, data, TrainSpec(epochs=1, batch_size=16, max_steps_per_epoch=None), seed=0)
print(json.dumps({"peak": status("VmHWM:") - base, "examples": len(data.train_x), "loss": log.epochs[-1].train_loss,
                  "steps": log.steps}))
"""


@pytest.mark.slow
def test_a_folder_larger_than_the_memory_allowed_trains_streaming(tmp_path: Path) -> None:
    """1,000 images decode to 49 MB as uint8 (196 MB as float32). Streaming, the peak resident
    memory added while loading and training them stays below that (measured 35 MB, the same for
    2,000 images: a few batches, the statistics' chunk and the allocator's share), where the
    in-memory path, which holds them all, peaks above it (measured 86 MB)."""
    write_folder(tmp_path / "small", per_class=4, side=8, val=1)
    write_folder(tmp_path / "big", per_class=500, side=8, val=2)  # tiny files, upscaled to 128 x 128 when decoded
    decoded = 1_000 * 3 * 128 * 128  # the memory allowed
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    found = {}
    for mode in ("stream", "memory"):
        out = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path), mode], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        found[mode] = json.loads(out.stdout)
    assert found["stream"]["examples"] == 1_000 and found["stream"]["steps"] == 63
    assert found["stream"]["loss"] == found["memory"]["loss"]  # the same training
    assert found["stream"]["peak"] < decoded, found
    assert found["memory"]["peak"] > decoded, found  # the in-memory path holds every image: it would not fit
