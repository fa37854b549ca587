"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from their official distributions.

Either format works, unpacked or still in its archive (``.tar.gz`` as distributed, or
re-compressed ``.tar.xz``/``.tar.bz2``/``.tar``):

- python version: ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) or ``cifar-100-python/`` (``train``, ``test``): pickled dicts of uint8 rows;
- binary version: ``cifar-10-batches-bin/`` (``data_batch_1.bin`` .. ``test_batch.bin``, records
  of label byte + 3072 pixel bytes) or ``cifar-100-binary/`` (``train.bin``, ``test.bin``,
  coarse and fine label bytes + 3072 pixel bytes).

They are looked for in ``<data_dir>/<dataset>/`` (``cifar10/`` or ``cifar-10/``, ``cifar100/`` or
``cifar-100/``) and ``<data_dir>/`` (so torchvision's root, holding ``cifar-10-batches-py/``, works
too). Missing data is downloaded (the python version) when allowed and a network answers;
otherwise the error names the folder and every accepted file. CIFAR-100 uses the 100 fine labels.

Nothing in a data folder is trusted: each batch whose official checksum is published (every
CIFAR-10 file, CIFAR-100's python files) must match it before it is decoded, python batches are
unpickled by an unpickler that builds only numpy arrays and plain containers (a pickle that
names any other callable is refused, so no code from the file runs), and a corrupt or
truncated archive is a :class:`DataError` naming it.

The standard CIFAR augmentation lives in :mod:`prunebench.data.augment`.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import lzma
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebench.data.augment import random_crop_flip  # re-exported: it used to live here
from prunebench.data.base import DATASETS, RawDataset
from prunebench.data import cache
from prunebench.data.pixels import Pixels, channel_stats, stats_chunk
from prunebench.errors import DataError

DOWNLOAD_TIMEOUT_S = 30
IMAGE_BYTES = 3 * 32 * 32
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")
# The largest official batch is CIFAR-100's 154 MB train file; anything far larger is not one.
MAX_BATCH_BYTES = 256 * 1024 * 1024
# What reading a damaged .tar/.gz/.xz/.bz2 can raise.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error)


@dataclass(frozen=True)
class Digest:
    """A published checksum of one file: ``algorithm`` is a :mod:`hashlib` name."""

    algorithm: str
    hex: str


@dataclass(frozen=True)
class CifarSpec:
    name: str
    num_classes: int
    folders: tuple[str, ...]  # subfolders of data_dir that may hold this dataset
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
    # "member folder/file" -> its published checksum; files not listed are checked by structure only
    official: dict[str, Digest]


CIFAR10 = CifarSpec(
    name="cifar10",
    num_classes=10,
    folders=("cifar10", "cifar-10"),
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
    official={
        # MD5 is what the dataset's page (and torchvision) publishes for the python batches
        "cifar-10-batches-py/data_batch_1": Digest("md5", "c99cafc152244af753f735de768cd75f"),
        "cifar-10-batches-py/data_batch_2": Digest("md5", "d4bba439e000b95fd0a9bffe97cbabec"),
        "cifar-10-batches-py/data_batch_3": Digest("md5", "54ebc095f3ab1f0389bbae665268c751"),
        "cifar-10-batches-py/data_batch_4": Digest("md5", "634d18415352ddfa80567beed471001a"),
        "cifar-10-batches-py/data_batch_5": Digest("md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        "cifar-10-batches-py/test_batch": Digest("md5", "40351d587109b95175f43aff81a1287e"),
        "cifar-10-batches-bin/data_batch_1.bin": Digest("sha256", "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"),
        "cifar-10-batches-bin/data_batch_2.bin": Digest("sha256", "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"),
        "cifar-10-batches-bin/data_batch_3.bin": Digest("sha256", "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"),
        "cifar-10-batches-bin/data_batch_4.bin": Digest("sha256", "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"),
        "cifar-10-batches-bin/data_batch_5.bin": Digest("sha256", "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"),
        "cifar-10-batches-bin/test_batch.bin": Digest("sha256", "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"),
    },
)

CIFAR100 = CifarSpec(
    name="cifar100",
    num_classes=100,
    folders=("cifar100", "cifar-100"),
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
    official={  # no checksums of the binary version's files are published
        "cifar-100-python/train": Digest("md5", "16019d7e3df5f24257cddd939b257f8d"),
        "cifar-100-python/test": Digest("md5", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
    },
)


def numpy_global(module: str, name: str) -> Callable[..., object]:
    """A numpy reconstruction helper, from wherever this numpy keeps it (``numpy._core`` in 2.x,
    ``numpy.core`` before), whichever of the two names the pickle used."""
    for candidate in (module.replace("numpy.core", "numpy._core", 1), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"this numpy has no {module}.{name}")


# Every global an official batch (or a re-pickled copy at any protocol) refers to. Each one only
# builds an array or a dtype from the pickle's own bytes.
BATCH_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR python batches and nothing else: a pickle can call any global it names,
    so only the few numpy names above are handed out and every other name is refused before
    it is imported or called."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in BATCH_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never does")
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        return numpy_global(module, name)


def unpickle_batch(payload: bytes) -> object:
    return BatchUnpickler(io.BytesIO(payload), encoding="bytes").load()


def decode_python(payload: bytes, spec: CifarSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (N, 3, 32, 32) uint8 images and int64 labels."""
    try:
        batch = unpickle_batch(payload)
    except Exception as exc:  # any decoding failure means a corrupt or foreign file
        raise DataError(f"{source} is not a {spec.name} python batch, refused ({exc})") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(spec.label_key) if isinstance(batch, dict) else None
    # Exact types: a list of shared sub-lists could otherwise expand into a huge array.
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise DataError(f"{source}: expected {spec.name} images as rows of {IMAGE_BYTES} uint8 values under b'data'")
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        labels = labels.tolist()
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise DataError(f"{source}: expected one integer label per image under {spec.label_key!r}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def decode_binary(payload: bytes, spec: CifarSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size records: label byte(s), then 1024 red, 1024 green, 1024 blue pixels.

    The images are a view into ``payload`` (rows of 3072 bytes), copied once, by the caller."""
    record = spec.label_bytes + IMAGE_BYTES
    if len(payload) == 0 or len(payload) % record:
        raise DataError(f"{source}: size {len(payload)} is not a multiple of the {record}-byte {spec.name} record")
    rows = np.frombuffer(payload, dtype=np.uint8).reshape(-1, record)
    return rows[:, spec.label_bytes :], rows[:, spec.label_bytes - 1].astype(np.int64)


class Files:
    """Reads member files from a folder or from inside an archive, by relative path.

    A damaged archive is a DataError naming it, whenever the damage is found."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archive: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if root.is_file():
            try:
                self.archive = tarfile.open(root)  # noqa: SIM115 (closed by close())
                self.members = {m.name.removeprefix("./"): m for m in self.archive.getmembers() if m.isfile()}
            except ARCHIVE_ERRORS as exc:
                self.close()
                raise self.corrupt(exc) from None

    def corrupt(self, exc: BaseException) -> DataError:
        return DataError(
            f"{self.root} is a corrupt or truncated archive ({type(exc).__name__}: {exc}); "
            "delete it and provide the original"
        )

    def source(self, relative: str) -> str:
        return f"{self.root}:{relative}" if self.archive else str(self.root / relative)

    def has(self, relative: str) -> bool:
        return relative in self.members if self.archive else (self.root / relative).is_file()

    def size(self, relative: str) -> int:
        return self.members[relative].size if self.archive else (self.root / relative).stat().st_size

    def read(self, relative: str) -> bytes:
        size = self.size(relative)
        if size > MAX_BATCH_BYTES:
            raise DataError(f"{self.source(relative)}: {size} bytes is far larger than any official batch")
        if self.archive is None:
            return (self.root / relative).read_bytes()
        try:
            handle = self.archive.extractfile(self.members[relative])
            payload = handle.read() if handle is not None else None
        except ARCHIVE_ERRORS as exc:
            raise self.corrupt(exc) from None
        if payload is None or len(payload) != size:
            raise DataError(f"{self.source(relative)}: cannot read it whole from the archive; it is truncated")
        return payload

    def read_in_order(self, relatives: list[str]) -> Iterator[tuple[str, bytes | bytearray]]:
        """Each file's bytes, one at a time, in the order asked for.

        An archive is read in one pass from its start: a compressed tar has no random access, and
        every backward seek would decompress it again from the beginning. A file that comes
        before its turn is held until then (the official archives hold them in order).
        """
        if self.archive is None:
            for relative in relatives:
                yield relative, self.read(relative)
            return
        wanted, pending = list(relatives), dict[str, bytes | bytearray]()
        try:
            with tarfile.open(self.root, mode="r|*") as stream:
                for member in stream:
                    name = member.name.removeprefix("./")
                    if not member.isfile() or name not in wanted or name in pending:
                        continue
                    if member.size > MAX_BATCH_BYTES:
                        raise DataError(f"{self.source(name)}: {member.size} bytes is far larger than any official batch")
                    payload = read_member(stream, member)
                    if len(payload) != member.size:
                        raise DataError(f"{self.source(name)}: cannot read it whole from the archive; it is truncated")
                    pending[name] = payload
                    del payload  # held by `pending` only: freed once the caller is done with it
                    while wanted and wanted[0] in pending:
                        relative = wanted.pop(0)
                        yield relative, pending.pop(relative)
        except ARCHIVE_ERRORS as exc:
            raise self.corrupt(exc) from None
        if wanted:
            raise DataError(f"{self.source(wanted[0])}: not found reading the archive through; it is truncated")

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, chunk: int = 1 << 20) -> bytearray:
    """A member's bytes read straight into one buffer (``read()`` would join a second copy)."""
    payload = bytearray(member.size)
    handle = archive.extractfile(member)
    view, filled = memoryview(payload), 0
    while handle is not None and filled < member.size:
        got = handle.readinto(view[filled : filled + chunk])
        if not got:
            break
        filled += got
    view.release()
    return payload[:filled] if filled < member.size else payload


def verify(spec: CifarSpec, relative: str, payload: bytes, source: str) -> None:
    """Refuse a batch whose published checksum differs, before anything decodes it."""
    official = spec.official.get(relative)
    if official is None:
        return
    actual = hashlib.new(official.algorithm, payload).hexdigest()
    if actual != official.hex:
        raise DataError(
            f"{source} is corrupt or not the official file: {official.algorithm.upper()} {actual[:16]}... "
            f"but the official file has {official.hex[:16]}...; delete it and provide the original"
        )


def layouts(spec: CifarSpec) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(format, train files, test file, folder) for each official format."""
    return [
        ("python", spec.python_train, spec.python_test, spec.python_folder),
        ("binary", spec.binary_train, spec.binary_test, spec.binary_folder),
    ]


def candidates(spec: CifarSpec, data_dir: Path) -> list[Path]:
    """Folders and archives to try, most specific first."""
    found: list[Path] = []
    for folder in (*(data_dir / name for name in spec.folders), data_dir):
        found.append(folder)
        for stem in spec.archive_stems:
            found += [folder / (stem + suffix) for suffix in ARCHIVE_SUFFIXES]
    return found


def locate(spec: CifarSpec, data_dir: Path) -> tuple[Files, str, str] | None:
    """(its files, format, member folder) of the first complete copy, or None; the caller closes
    the files (an archive's member list is read once, not again to load it).

    An archive under one of the official names that cannot be read is an error, not skipped."""
    for root in candidates(spec, data_dir):
        # folders are tried only as folders, archives only as files
        if not (root.is_file() if root.name.endswith(ARCHIVE_SUFFIXES) else root.is_dir()):
            continue
        files = Files(root)
        for fmt, train, test, folder in layouts(spec):
            if all(files.has(f"{folder}/{name}") for name in (*train, test)):
                return files, fmt, folder
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


def load_cifar(spec: CifarSpec, data_dir: Path, allow_download: bool, use_cache: bool = True) -> RawDataset:
    """Read ``spec`` from ``data_dir``; images stay uint8, standardized per channel batch by batch (:class:`Pixels`).

    With ``use_cache`` the decoded images are kept in the decoded cache (:mod:`prunebench.data.cache`)
    and memory-mapped from it: decoded once per source (its SHA-256), loaded in about a second
    after, the same bits either way."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data_dir {data_dir} is a file; it must be the folder that holds {spec.folders[0]}/")
    where = locate(spec, data_dir)
    if where is None:
        reason = download(spec, data_dir / spec.name) if allow_download else "downloading is off"
        where = locate(spec, data_dir) if reason is None else None
        if where is None:
            raise DataError(
                f"{spec.name} data not found in {data_dir / spec.name} or {data_dir}: expected "
                f"{expected_files(spec)} (set data_dir or PRUNEBENCH_DATA; download failed: {reason})"
            )
    files, fmt, folder = where
    if not use_cache:
        arrays, extra = decode_cifar(spec, files, fmt, folder)
    else:
        try:
            sources = [files.root] if files.archive else [files.root / r for r in members(spec, fmt, folder)]
            # the checksums it was verified against are part of what was decoded
            official = json.dumps(sorted((k, d.algorithm, d.hex) for k, d in spec.official.items()))
            key = hashlib.sha256((cache.sources_sha256(sources) + official).encode()).hexdigest()
        except OSError as exc:
            files.close()
            raise DataError(f"{files.root}: cannot read it ({exc})") from None
        arrays, extra = cache.cached(spec.name, key, lambda: decode_cifar(spec, files, fmt, folder))
    files.close()
    mean, std = (torch.tensor(extra[k], dtype=torch.float64) for k in ("mean", "std"))
    train_p, test_p = (Pixels(torch.from_numpy(arrays[k]), mean, std) for k in ("train_x", "test_x"))
    train_y, test_y = (torch.from_numpy(np.asarray(arrays[k])) for k in ("train_y", "test_y"))
    return RawDataset(train_p, train_y, test_p, test_y, num_classes=spec.num_classes, checksums=extra["checksums"])


def members(spec: CifarSpec, fmt: str, folder: str) -> list[str]:
    """The member files of ``fmt``, train files first."""
    train_names, test_name = (spec.python_train, spec.python_test) if fmt == "python" else (spec.binary_train, spec.binary_test)
    return [f"{folder}/{n}" for n in (*train_names, test_name)]


def decode_cifar(spec: CifarSpec, files: Files, fmt: str, folder: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Every member verified and decoded: uint8 images and int64 labels of each split, and (as
    JSON data) the files' SHA-256 and the training set's per-channel statistics. Closes ``files``."""
    root = files.root
    decode = decode_python if fmt == "python" else decode_binary
    checksums: dict[str, str] = {}
    try:
        # Every image takes at least its 3072 bytes of a file, so the files' sizes bound the counts;
        # pages past the images are never touched, so they take no memory.
        names = members(spec, fmt, folder)
        splits = {"train": names[:-1], "test": names[-1:]}
        images = {k: torch.empty((sum(files.size(r) for r in v) // IMAGE_BYTES, 3, 32, 32), dtype=torch.uint8)
                  for k, v in splits.items()}
        label_parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        counts = {"train": 0, "test": 0}
        for relative, payload in files.read_in_order([*splits["train"], *splits["test"]]):
            verify(spec, relative, payload, files.source(relative))
            checksums[relative] = sha256_hex(payload)
            x, y = decode(payload, spec, files.source(relative))
            split = "train" if relative in splits["train"] else "test"
            rows = images[split].numpy().reshape(-1, IMAGE_BYTES)
            rows[counts[split] : counts[split] + len(x)] = x.reshape(len(x), IMAGE_BYTES)  # the one copy
            label_parts[split].append(y)
            counts[split] += len(x)
            del x, payload  # one file's bytes in memory at a time
    finally:
        files.close()
    train_x, test_x = images["train"][: counts["train"]], images["test"][: counts["test"]]
    train_y, test_y = (np.concatenate(label_parts[k]) for k in ("train", "test"))
    for labels, split in ((train_y, "train"), (test_y, "test")):
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes):
            raise DataError(f"{root}: {split} labels outside 0..{spec.num_classes - 1}")
    size = stats_chunk(tuple(train_x.shape[1:]))
    mean, std = channel_stats(train_x[start : start + size] for start in range(0, train_x.shape[0], size))
    arrays = {"train_x": train_x.numpy(), "test_x": test_x.numpy(), "train_y": train_y, "test_y": test_y}
    # floats are written as their shortest repr in JSON: they read back bit for bit
    return arrays, {"checksums": checksums, "mean": mean.tolist(), "std": std.tolist()}


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


__all__ = ["CIFAR10", "CIFAR100", "Digest", "load_cifar", "random_crop_flip"]
