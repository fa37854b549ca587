"""MNIST and Fashion-MNIST from their original IDX ``.gz`` files, SHA-256 checked.

Files live in ``<data_dir>/<dataset>/`` (torchvision's ``<data_dir>/MNIST/raw/`` layout is
accepted too). Missing files are downloaded from the canonical mirrors when ``download`` is
on and a network answers; otherwise the error names the directory and the expected files.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebench.data.base import DATASETS, RawDataset, standardize
from prunebench.errors import DataError

IDX_DTYPE_UBYTE = 0x08
DOWNLOAD_TIMEOUT_S = 15


@dataclass(frozen=True)
class IdxDataset:
    name: str
    torchvision_folder: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]  # file name -> SHA-256 of the .gz file

    def files(self) -> list[str]:
        return list(self.sha256)


SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

MNIST = IdxDataset(
    name="mnist",
    torchvision_folder="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
)

FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    torchvision_folder="FashionMNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    sha256={
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
)


def read_idx(data: bytes, source: str) -> np.ndarray:
    """Decode an uncompressed IDX file (big-endian header, unsigned bytes)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_DTYPE_UBYTE:
        raise DataError(f"{source} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(data) != header + int(np.prod(dims)):
        raise DataError(f"{source}: size does not match its IDX header {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def sha256_checked(path: Path, expected: str) -> str:
    """The file's SHA-256, which must be ``expected``; an unreadable or corrupt file is a DataError."""
    try:
        with path.open("rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if actual != expected:
        raise DataError(
            f"{path} is corrupt: SHA-256 {actual[:16]}... but the official file "
            f"has {expected[:16]}...; delete it and provide the original"
        )
    return actual


def read_idx_gz(path: Path) -> np.ndarray:
    """Decode a gzipped IDX file; a truncated or garbled one is a DataError naming it."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path} is not a whole gzipped IDX file ({exc}); delete it and provide the original") from None
    return read_idx(data, str(path))


def find_folder(spec: IdxDataset, data_dir: Path) -> Path:
    """The first candidate folder that holds all files; else the canonical one."""
    canonical = data_dir / spec.name
    for folder in (canonical, data_dir / spec.torchvision_folder / "raw"):
        if all((folder / f).is_file() for f in spec.files()):
            return folder
    return canonical


def download(spec: IdxDataset, folder: Path, missing: list[str]) -> str | None:
    """Fetch missing files atomically; returns a reason on failure, None on success."""
    folder.mkdir(parents=True, exist_ok=True)
    reason = "no mirror answered"
    for name in missing:
        for mirror in spec.mirrors:
            try:
                with urllib.request.urlopen(mirror + name, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    payload = response.read()
            except OSError as exc:
                reason = f"{mirror}: {exc}"
                continue
            with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
                tmp.write(payload)
            os.replace(tmp.name, folder / name)
            break
        else:
            return reason
    return None


def load_idx_dataset(spec: IdxDataset, data_dir: Path, allow_download: bool) -> RawDataset:
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data_dir {data_dir} is a file; it must be the folder that holds {spec.name}/")
    folder = find_folder(spec, data_dir)
    missing = [f for f in spec.files() if not (folder / f).is_file()]
    if missing:
        reason = download(spec, folder, missing) if allow_download else "downloading is off"
        if reason is not None:
            raise DataError(
                f"{spec.name} data not found: expected {', '.join(missing)} in {folder} "
                f"(set data_dir or PRUNEBENCH_DATA to the folder that holds {spec.name}/; "
                f"download failed: {reason})"
            )
    checksums: dict[str, str] = {}
    for name, expected in spec.sha256.items():
        checksums[name] = sha256_checked(folder / name, expected)

    def split(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        images_file, labels_file = SPLIT_FILES[kind]
        images = read_idx_gz(folder / images_file)
        labels = read_idx_gz(folder / labels_file)
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        return x, torch.from_numpy(labels.astype(np.int64))

    train_x, train_y = split("train")
    test_x, test_y = split("test")
    train_x, test_x = standardize(train_x, test_x)
    return RawDataset(train_x, train_y, test_x, test_y, num_classes=10, checksums=checksums)


@DATASETS.register("mnist")
def load_mnist(data_dir: Path, allow_download: bool) -> RawDataset:
    return load_idx_dataset(MNIST, data_dir, allow_download)


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(data_dir: Path, allow_download: bool) -> RawDataset:
    return load_idx_dataset(FASHION_MNIST, data_dir, allow_download)
