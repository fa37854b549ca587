"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from their official distributions.

Either format works, unpacked or still in its archive (``.tar.gz`` as distributed, or
re-compressed ``.tar.xz``/``.tar.bz2``/``.tar``):

- python version: ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) or ``cifar-100-python/`` (``train``, ``test``): pickled dicts of uint8 rows;
- binary version: ``cifar-10-batches-bin/`` (``data_batch_1.bin`` .. ``test_batch.bin``, records
  of label byte + 3072 pixel bytes) or ``cifar-100-binary/`` (``train.bin``, ``test.bin``,
  coarse and fine label bytes + 3072 pixel bytes).

They are looked for in ``<data_dir>/<dataset>/`` and ``<data_dir>/``. Missing data is
downloaded (the python version) when allowed and a network answers; otherwise the error
names the folder and every accepted file. CIFAR-100 uses the 100 fine labels.
The standard CIFAR augmentation lives in :mod:`prunebench.data.augment`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebench.data.augment import random_crop_flip  # re-exported: it used to live here
from prunebench.data.base import DATASETS, RawDataset
from prunebench.errors import DataError

DOWNLOAD_TIMEOUT_S = 30
IMAGE_BYTES = 3 * 32 * 32
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")


@dataclass(frozen=True)
class CifarSpec:
    name: str
    num_classes: int
    python_folder: str
    python_train: tuple[str, ...]
    python_test: str
    label_key: bytes
    binary_folder: str
    binary_train: tuple[str, ...]
    binary_test: str
    label_bytes: int  # label bytes before each binary record's pixels; the last is used
    archive_stems: tuple[str, ...]
    url: str
    md5: str  # of the official python-version archive


CIFAR10 = CifarSpec(
    name="cifar10",
    num_classes=10,
    python_folder="cifar-10-batches-py",
    python_train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    python_test="test_batch",
    label_key=b"labels",
    binary_folder="cifar-10-batches-bin",
    binary_train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    binary_test="test_batch.bin",
    label_bytes=1,
    archive_stems=("cifar-10-python", "cifar-10-binary"),
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)

CIFAR100 = CifarSpec(
    name="cifar100",
    num_classes=100,
    python_folder="cifar-100-python",
    python_train=("train",),
    python_test="test",
    label_key=b"fine_labels",
    binary_folder="cifar-100-binary",
    binary_train=("train.bin",),
    binary_test="test.bin",
    label_bytes=2,  # coarse label, then fine label
    archive_stems=("cifar-100-python", "cifar-100-binary"),
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def decode_python(payload: bytes, spec: CifarSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (N, 3, 32, 32) uint8 images and int64 labels."""
    try:
        batch = pickle.loads(payload, encoding="bytes")  # noqa: S301 (official data format)
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[spec.label_key], dtype=np.int64)
    except Exception as exc:  # any decoding failure means a corrupt or foreign file
        raise DataError(f"{source} is not a {spec.name} python batch ({exc})") from None
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES or len(labels) != len(data):
        raise DataError(f"{source}: expected rows of {IMAGE_BYTES} bytes with one label each")
    return data.reshape(-1, 3, 32, 32), labels


def decode_binary(payload: bytes, spec: CifarSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size records: label byte(s), then 1024 red, 1024 green, 1024 blue pixels."""
    record = spec.label_bytes + IMAGE_BYTES
    if len(payload) == 0 or len(payload) % record:
        raise DataError(f"{source}: size {len(payload)} is not a multiple of the {record}-byte {spec.name} record")
    rows = np.frombuffer(payload, dtype=np.uint8).reshape(-1, record)
    return rows[:, spec.label_bytes :].reshape(-1, 3, 32, 32), rows[:, spec.label_bytes - 1].astype(np.int64)


class Files:
    """Reads member files from a folder or from inside an archive, by relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archive: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if root.is_file():
            self.archive = tarfile.open(root)  # noqa: SIM115 (closed by close())
            self.members = {m.name.removeprefix("./"): m for m in self.archive.getmembers() if m.isfile()}

    def has(self, relative: str) -> bool:
        return relative in self.members if self.archive else (self.root / relative).is_file()

    def read(self, relative: str) -> bytes:
        if self.archive is None:
            return (self.root / relative).read_bytes()
        handle = self.archive.extractfile(self.members[relative])
        if handle is None:
            raise DataError(f"{self.root}: cannot read {relative}")
        return handle.read()

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def layouts(spec: CifarSpec) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(format, train files, test file, folder) for each official format."""
    return [
        ("python", spec.python_train, spec.python_test, spec.python_folder),
        ("binary", spec.binary_train, spec.binary_test, spec.binary_folder),
    ]


def candidates(spec: CifarSpec, data_dir: Path) -> list[Path]:
    """Folders and archives to try, most specific first."""
    found: list[Path] = []
    for folder in (data_dir / spec.name, data_dir):
        found.append(folder)
        for stem in spec.archive_stems:
            found += [folder / (stem + suffix) for suffix in ARCHIVE_SUFFIXES]
    return found


def locate(spec: CifarSpec, data_dir: Path) -> tuple[Path, str, str] | None:
    """(root, format, member folder) of the first complete copy, or None."""
    for root in candidates(spec, data_dir):
        if not root.exists() or (root.is_file() and not tarfile.is_tarfile(root)):
            continue
        files = Files(root)
        try:
            for fmt, train, test, folder in layouts(spec):
                if all(files.has(f"{folder}/{name}") for name in (*train, test)):
                    return root, fmt, folder
        finally:
            files.close()
    return None


def expected_files(spec: CifarSpec) -> str:
    python = ", ".join(f"{spec.python_folder}/{n}" for n in (*spec.python_train, spec.python_test))
    binary = ", ".join(f"{spec.binary_folder}/{n}" for n in (*spec.binary_train, spec.binary_test))
    archives = ", ".join(stem + ".tar.gz" for stem in spec.archive_stems)
    return f"either {python}; or {binary}; or one of the archives {archives} (.tar.xz also accepted)"


def download(spec: CifarSpec, folder: Path) -> str | None:
    """Fetch the official python-version archive; returns a reason on failure."""
    target = folder / Path(spec.url).name
    try:
        with urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            payload = response.read()
    except OSError as exc:
        return f"{spec.url}: {exc}"
    if hashlib.md5(payload).hexdigest() != spec.md5:  # noqa: S324 (the published checksum is MD5)
        return f"{spec.url}: MD5 differs from the published {spec.md5}"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
        tmp.write(payload)
    os.replace(tmp.name, target)
    return None


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def load_cifar(spec: CifarSpec, data_dir: Path, allow_download: bool) -> RawDataset:
    """Read ``spec`` from ``data_dir``; images become per-channel standardized float32."""
    where = locate(spec, data_dir)
    if where is None:
        reason = download(spec, data_dir / spec.name) if allow_download else "downloading is off"
        where = locate(spec, data_dir) if reason is None else None
        if where is None:
            raise DataError(
                f"{spec.name} data not found in {data_dir / spec.name} or {data_dir}: expected "
                f"{expected_files(spec)} (set data_dir or PRUNEBENCH_DATA; download failed: {reason})"
            )
    root, fmt, folder = where
    decode = decode_python if fmt == "python" else decode_binary
    train_names, test_name = (spec.python_train, spec.python_test) if fmt == "python" else (spec.binary_train, spec.binary_test)
    files = Files(root)
    checksums: dict[str, str] = {}
    try:
        def read(name: str) -> tuple[np.ndarray, np.ndarray]:
            payload = files.read(f"{folder}/{name}")
            checksums[f"{folder}/{name}"] = sha256_hex(payload)
            return decode(payload, spec, f"{root}:{folder}/{name}")

        train = [read(name) for name in train_names]
        test = read(test_name)
    finally:
        files.close()
    train_x = torch.from_numpy(np.concatenate([x for x, _ in train]))
    train_y = torch.from_numpy(np.concatenate([y for _, y in train]))
    test_x, test_y = torch.from_numpy(test[0].copy()), torch.from_numpy(test[1])
    for labels, split in ((train_y, "train"), (test_y, "test")):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes):
            raise DataError(f"{root}: {split} labels outside 0..{spec.num_classes - 1}")
    train_x, test_x = standardize_channels(train_x, test_x)
    return RawDataset(train_x, train_y, test_x, test_y, num_classes=spec.num_classes, checksums=checksums)


def standardize_channels(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale pixels to [0, 1], then by the training set's per-channel mean and std."""
    train_f, test_f = train.float() / 255.0, test.float() / 255.0
    mean = train_f.mean(dim=(0, 2, 3), keepdim=True)
    std = train_f.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train_f - mean) / std, (test_f - mean) / std


@DATASETS.register("cifar10")
def load_cifar10(data_dir: Path, allow_download: bool) -> RawDataset:
    return load_cifar(CIFAR10, data_dir, allow_download)


@DATASETS.register("cifar100")
def load_cifar100(data_dir: Path, allow_download: bool) -> RawDataset:
    return load_cifar(CIFAR100, data_dir, allow_download)


def python_batch_bytes(images: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> bytes:
    """A batch in the official python format (used to write small test fixtures)."""
    return pickle.dumps({b"data": images.reshape(len(images), -1), label_key: labels.tolist()})


def binary_batch_bytes(images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None) -> bytes:
    """A batch in the official binary format (used to write small test fixtures)."""
    columns = [labels.astype(np.uint8)[:, None], images.reshape(len(images), -1).astype(np.uint8)]
    if coarse is not None:
        columns.insert(0, coarse.astype(np.uint8)[:, None])
    return np.concatenate(columns, axis=1).tobytes()


__all__ = ["CIFAR10", "CIFAR100", "load_cifar", "random_crop_flip"]
