"""CIFAR loaders on small files written here in each official format, and the augmentation."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.data import DATASETS, load_dataset
from prunebench.data.cifar import CIFAR10, CIFAR100, binary_batch_bytes, load_cifar, python_batch_bytes, random_crop_flip
from prunebench.errors import DataError

N_TRAIN_BATCH, N_TEST = 4, 6


def fake(n: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, classes, n)


def cifar10_files(fmt: str) -> dict[str, bytes]:
    files = {}
    for i in range(1, 6):
        images, labels = fake(N_TRAIN_BATCH, i)
        name = f"data_batch_{i}"
        files[name] = python_batch_bytes(images, labels) if fmt == "python" else binary_batch_bytes(images, labels)
    images, labels = fake(N_TEST, 0)
    files["test_batch"] = python_batch_bytes(images, labels) if fmt == "python" else binary_batch_bytes(images, labels)
    folder = CIFAR10.python_folder if fmt == "python" else CIFAR10.binary_folder
    suffix = "" if fmt == "python" else ".bin"
    return {f"{folder}/{name}{suffix}": payload for name, payload in files.items()}


def write_folder(root: Path, files: dict[str, bytes]) -> None:
    for name, payload in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)


def write_archive(path: Path, files: dict[str, bytes], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as archive:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


def expected_raw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    train = [fake(N_TRAIN_BATCH, i) for i in range(1, 6)]
    x = torch.from_numpy(np.concatenate([t[0] for t in train])).float() / 255
    return x, torch.from_numpy(np.concatenate([t[1] for t in train])), torch.from_numpy(fake(N_TEST, 0)[1])


@pytest.mark.parametrize("fmt", ["python", "binary"])
@pytest.mark.parametrize("packing", ["folder", "tar.gz", "tar.xz"])
def test_cifar10_formats(tmp_path: Path, fmt: str, packing: str) -> None:
    files = cifar10_files(fmt)
    if packing == "folder":
        write_folder(tmp_path / "cifar10", files)
    else:
        stem = "cifar-10-python" if fmt == "python" else "cifar-10-binary"
        write_archive(tmp_path / "cifar10" / f"{stem}.{packing}", files, "w:gz" if packing == "tar.gz" else "w:xz")
    raw = DATASETS.get("cifar10")(tmp_path, False)
    x, train_y, test_y = expected_raw()
    assert raw.train_x.shape == (5 * N_TRAIN_BATCH, 3, 32, 32) and raw.test_x.shape == (N_TEST, 3, 32, 32)
    assert raw.train_y.equal(train_y) and raw.test_y.equal(test_y) and raw.num_classes == 10
    # per-channel standardization of the very pixels written
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    torch.testing.assert_close(raw.train_x, (x - mean) / std)
    assert len(raw.checksums) == 6


def test_both_formats_decode_to_the_same_data(tmp_path: Path) -> None:
    write_folder(tmp_path / "a", cifar10_files("python"))
    write_folder(tmp_path / "b", cifar10_files("binary"))
    a, b = load_cifar(CIFAR10, tmp_path / "a", False), load_cifar(CIFAR10, tmp_path / "b", False)
    assert a.train_x.equal(b.train_x) and a.test_y.equal(b.test_y)


def test_cifar100_fine_labels_both_formats(tmp_path: Path) -> None:
    images, fine = fake(5, 1, classes=100)
    coarse = fine // 5
    test_images, test_fine = fake(3, 2, classes=100)
    python = {
        "cifar-100-python/train": python_batch_bytes(images, fine, b"fine_labels"),
        "cifar-100-python/test": python_batch_bytes(test_images, test_fine, b"fine_labels"),
    }
    binary = {
        "cifar-100-binary/train.bin": binary_batch_bytes(images, fine, coarse),
        "cifar-100-binary/test.bin": binary_batch_bytes(test_images, test_fine, test_fine // 5),
    }
    write_folder(tmp_path / "p" / "cifar100", python)
    write_archive(tmp_path / "b" / "cifar-100-binary.tar.gz", binary, "w:gz")
    for root in (tmp_path / "p", tmp_path / "b"):
        raw = load_cifar(CIFAR100, root, False)
        assert raw.num_classes == 100
        assert raw.train_y.tolist() == fine.tolist() and raw.test_y.tolist() == test_fine.tolist()


def test_registered_and_split(tmp_path: Path) -> None:
    write_folder(tmp_path / "cifar10", cifar10_files("binary"))
    splits = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.25, download=False)
    assert splits.input_shape == (3, 32, 32) and splits.val_x.shape[0] == 5
    assert "cifar100" in DATASETS


def test_missing_data_names_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-batches-bin/data_batch_1\.bin.*downloading is off"):
        load_cifar(CIFAR10, tmp_path, False)


def test_truncated_binary_batch_is_a_data_error(tmp_path: Path) -> None:
    files = cifar10_files("binary")
    files["cifar-10-batches-bin/test_batch.bin"] = files["cifar-10-batches-bin/test_batch.bin"][:-1]
    write_folder(tmp_path, files)
    with pytest.raises(DataError, match="not a multiple of the 3073-byte"):
        load_cifar(CIFAR10, tmp_path, False)


def test_random_crop_flip_is_a_seeded_crop_of_the_padded_image() -> None:
    x = torch.randn(8, 3, 6, 6)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    again = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape and out.equal(again)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(8):  # each output is some window of the padded image, possibly mirrored
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(out[i].equal(w) or out[i].equal(w.flip(2)) for w in windows)
    assert not out.equal(x)
    flipped_only = random_crop_flip(x, torch.Generator().manual_seed(1), padding=0)
    assert all(f.equal(o) or f.equal(o.flip(2)) for f, o in zip(flipped_only, x))


def test_image_folder_classes_and_center_crop(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    from prunebench.data.image_folder import load_image_folder

    colors = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for split, count in (("train", 2), ("val", 1)):
        for name, color in colors.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                image_module.new("RGB", (20 + i, 12), color).save(tmp_path / split / name / f"{i}.png")
    raw = load_image_folder(tmp_path, size=8, resize=10)
    assert raw.train_x.shape == (4, 3, 8, 8) and raw.test_x.shape == (2, 3, 8, 8)
    assert raw.train_y.tolist() == [0, 0, 1, 1] and raw.num_classes == 2
    assert float(raw.train_x[0, 0].mean()) > float(raw.train_x[2, 0].mean())  # "cat" images are red


def test_image_folder_missing_split_is_a_data_error(tmp_path: Path) -> None:
    from prunebench.data.image_folder import load_image_folder

    with pytest.raises(DataError, match="val"):
        load_image_folder(tmp_path)
