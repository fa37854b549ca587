"""ImageNet-style class folders: ``<root>/train/<class>/<image>`` and ``<root>/val/<class>/...``.

Images are decoded with Pillow (optional: ``pip install prunebench[images]``), resized so the
shorter side is ``resize`` pixels, center-cropped to ``size`` x ``size`` (the usual ImageNet
evaluation transform). By default they are decoded once and kept in memory as uint8
(standardized per batch), which suits subsets such as Imagenette; with ``streaming`` (a run
setting) each batch is decoded from its files by DataLoader workers, so a folder of any size
(all of ImageNet) trains in bounded memory, on the same batches. Class indices follow the sorted
folder names of ``train``.
Registered as dataset ``image-folder``, read from ``<data_dir>/image-folder/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from prunebench.data.base import DATASETS, RawDataset
from prunebench.data.stream import Stream
from prunebench.errors import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def require_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DataError("image folders need Pillow to decode images: pip install 'prunebench[images]'") from None
    return Image


def decode(path: Path, size: int, resize: int) -> np.ndarray:
    """(3, size, size) uint8: shorter side to ``resize``, then a center crop."""
    image_module = require_pillow()
    try:
        with image_module.open(path) as image:
            image = image.convert("RGB")
            scale = resize / min(image.size)
            width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
            image = image.resize((width, height), image_module.Resampling.BILINEAR)
            left, top = (width - size) // 2, (height - size) // 2
            image = image.crop((left, top, left + size, top + size))
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()
    except Exception as exc:  # noqa: BLE001  (Pillow's decoders fail in many types: OSError, DecompressionBombError, SyntaxError, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot decode image ({reason})") from None


class FolderImages(Dataset[torch.Tensor]):
    """Image files decoded on demand: example ``i`` is ``paths[i]`` as (3, size, size) uint8."""

    def __init__(self, paths: list[Path], size: int, resize: int) -> None:
        self.paths, self.size, self.resize = paths, size, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(decode(self.paths[i], self.size, self.resize))


def read_split(folder: Path, classes: list[str], size: int, resize: int) -> tuple[Stream, torch.Tensor]:
    """The split's images (listed, not decoded) and labels, in class then file-name order."""
    paths, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()) if (folder / name).is_dir() else []:
            if path.suffix.lower() in EXTENSIONS:
                paths.append(path)
                labels.append(index)
    if not paths:
        raise DataError(f"{folder} holds no images in class folders named like those of train/ ({', '.join(classes[:3])}, ...)")
    return Stream.of(FolderImages(paths, size, resize)), torch.tensor(labels, dtype=torch.long)


def load_image_folder(root: Path, size: int = 224, resize: int = 256) -> RawDataset:
    """List ``root/train`` and ``root/val`` class folders as streams of uint8 images; loading a
    dataset then reads them into memory or keeps streaming them (``streaming``)."""
    if size < 1 or resize < size:
        raise DataError(f"image size must be >= 1 and resize >= size, got size {size}, resize {resize}")
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise DataError(f"image folder not found: expected {train_dir}/<class>/<images> and {val_dir}/<class>/<images>")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{train_dir} has no class folders")
    train_x, train_y = read_split(train_dir, classes, size, resize)
    test_x, test_y = read_split(val_dir, classes, size, resize)
    return RawDataset(train_x, train_y, test_x, test_y, num_classes=len(classes))


@DATASETS.register("image-folder")
def image_folder(data_dir: Path, allow_download: bool) -> RawDataset:
    return load_image_folder(data_dir / "image-folder")
