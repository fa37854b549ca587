"""CIFAR loaders on small files written here in each official format, and the augmentation.

The loader checks every batch against its published checksum; the small files written here
are made "official" for one test at a time with the ``trusted`` fixture.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, has_dataset
from prunebench.data import DATASETS, load_dataset
from prunebench.data.cifar import (
    CIFAR10,
    CIFAR100,
    Digest,
    binary_batch_bytes,
    decode_python,
    load_cifar,
    python_batch_bytes,
    random_crop_flip,
)
from prunebench.data.pixels import Pixels
from prunebench.errors import DataError

N_TRAIN_BATCH, N_TEST = 4, 6
IMAGE_ROW = 3 * 32 * 32


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


Trust = Callable[[dict[str, bytes]], None]


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> Trust:
    """Make the given member files the "official" ones for this test (their SHA-256)."""

    def trust(files: dict[str, bytes]) -> None:
        for relative, payload in files.items():
            for spec in (CIFAR10, CIFAR100):
                if relative.split("/")[0] in (spec.python_folder, spec.binary_folder):
                    monkeypatch.setitem(spec.official, relative, Digest("sha256", hashlib.sha256(payload).hexdigest()))

    return trust


def expected_raw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    train = [fake(N_TRAIN_BATCH, i) for i in range(1, 6)]
    x = torch.from_numpy(np.concatenate([t[0] for t in train])).float() / 255
    return x, torch.from_numpy(np.concatenate([t[1] for t in train])), torch.from_numpy(fake(N_TEST, 0)[1])


@pytest.mark.parametrize("fmt", ["python", "binary"])
@pytest.mark.parametrize("packing", ["folder", "tar.gz", "tar.xz"])
def test_cifar10_formats(tmp_path: Path, trusted: Trust, fmt: str, packing: str) -> None:
    files = cifar10_files(fmt)
    trusted(files)
    if packing == "folder":
        write_folder(tmp_path / "cifar10", files)
    else:
        stem = "cifar-10-python" if fmt == "python" else "cifar-10-binary"
        write_archive(tmp_path / "cifar10" / f"{stem}.{packing}", files, "w:gz" if packing == "tar.gz" else "w:xz")
    raw = DATASETS.get("cifar10")(tmp_path, False)
    x, train_y, test_y = expected_raw()
    assert raw.train_x.shape == (5 * N_TRAIN_BATCH, 3, 32, 32) and raw.test_x.shape == (N_TEST, 3, 32, 32)
    assert raw.train_y.equal(train_y) and raw.test_y.equal(test_y) and raw.num_classes == 10
    # per-channel standardization of the very pixels written, batch by batch from uint8 pixels
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    assert isinstance(raw.train_x, Pixels) and raw.train_x.pixels.dtype == torch.uint8
    torch.testing.assert_close(raw.train_x[:], (x - mean) / std)
    torch.testing.assert_close(raw.train_x[torch.tensor([3, 1])], ((x - mean) / std)[[3, 1]])
    torch.testing.assert_close(raw.train_x[2], ((x - mean) / std)[2])
    assert len(raw.checksums) == 6


def test_both_formats_decode_to_the_same_data(tmp_path: Path, trusted: Trust) -> None:
    trusted(cifar10_files("python") | cifar10_files("binary"))
    write_folder(tmp_path / "a", cifar10_files("python"))
    write_folder(tmp_path / "b", cifar10_files("binary"))
    a, b = load_cifar(CIFAR10, tmp_path / "a", False), load_cifar(CIFAR10, tmp_path / "b", False)
    assert a.train_x.pixels.equal(b.train_x.pixels) and a.train_x[:].equal(b.train_x[:]) and a.test_y.equal(b.test_y)


def test_cifar100_fine_labels_both_formats(tmp_path: Path, trusted: Trust) -> None:
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
    trusted(python)  # the binary version has no published checksums: it is checked by structure
    write_folder(tmp_path / "p" / "cifar100", python)
    write_archive(tmp_path / "b" / "cifar-100-binary.tar.gz", binary, "w:gz")
    for root in (tmp_path / "p", tmp_path / "b"):
        raw = load_cifar(CIFAR100, root, False)
        assert raw.num_classes == 100
        assert raw.train_y.tolist() == fine.tolist() and raw.test_y.tolist() == test_fine.tolist()


def test_registered_and_split(tmp_path: Path, trusted: Trust) -> None:
    trusted(cifar10_files("binary"))
    write_folder(tmp_path / "cifar10", cifar10_files("binary"))
    splits = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.25, download=False)
    assert splits.input_shape == (3, 32, 32) and splits.val_x.shape[0] == 5
    assert "cifar100" in DATASETS


def test_missing_data_names_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-batches-bin/data_batch_1\.bin.*downloading is off"):
        load_cifar(CIFAR10, tmp_path, False)


def test_truncated_binary_batch_is_a_data_error(tmp_path: Path, trusted: Trust) -> None:
    files = cifar10_files("binary")
    files["cifar-10-batches-bin/test_batch.bin"] = files["cifar-10-batches-bin/test_batch.bin"][:-1]
    trusted(files)  # past the checksum, the record structure is still checked
    write_folder(tmp_path, files)
    with pytest.raises(DataError, match="not a multiple of the 3073-byte"):
        load_cifar(CIFAR10, tmp_path, False)


class RunsCode:
    """Unpickling this calls ``call(argument)``: what a crafted batch would do."""

    def __init__(self, call: Callable[[str], object], argument: str) -> None:
        self.call, self.argument = call, argument

    def __reduce__(self) -> tuple[Callable[[str], object], tuple[str]]:
        return self.call, (self.argument,)


def crafted_batches(marker: Path) -> dict[str, bytes]:
    """A python-version folder whose data_batch_1 would create ``marker`` when unpickled."""
    files = cifar10_files("python")
    _, labels = fake(N_TRAIN_BATCH, 1)
    evil = RunsCode(os.system, f"touch {marker}")
    files["cifar-10-batches-py/data_batch_1"] = pickle.dumps({b"data": evil, b"labels": labels.tolist()})
    return files


@pytest.mark.parametrize(
    "call, argument",
    [(os.system, "touch {marker}"), (builtins.exec, "open({marker!r}, 'w').close()"), (builtins.open, "{marker}")],
)
def test_crafted_pickle_runs_no_code(tmp_path: Path, call: Callable[[str], object], argument: str) -> None:
    marker = tmp_path / "marker"
    payload = pickle.dumps({b"data": RunsCode(call, argument.format(marker=str(marker))), b"labels": [0]})
    with pytest.raises(DataError, match=r"x/data_batch_1 is not a cifar10 python batch, refused \(it refers to"):
        decode_python(payload, CIFAR10, "x/data_batch_1")
    assert not marker.exists()


def test_crafted_batch_in_a_data_folder_runs_no_code(tmp_path: Path, trusted: Trust) -> None:
    marker = tmp_path / "marker"
    files = crafted_batches(marker)
    write_folder(tmp_path / "cifar10", files)
    # refused by its checksum before it is unpickled ...
    with pytest.raises(DataError, match=r"cifar-10-batches-py/data_batch_1 is corrupt or not the official file: MD5"):
        load_cifar(CIFAR10, tmp_path, False)
    assert not marker.exists()
    # ... and by the unpickler, were its checksum ever to match
    trusted(files)
    with pytest.raises(DataError, match=r"data_batch_1 is not a cifar10 python batch, refused \(it refers to posix\.system"):
        load_cifar(CIFAR10, tmp_path, False)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python_batches_at_any_numpy_protocol_still_load(protocol: int) -> None:
    images, labels = fake(3, 7)
    payload = pickle.dumps({b"data": images.reshape(3, -1), b"labels": labels.tolist()}, protocol=protocol)
    if protocol == 2:  # Python 3 writes protocol-2 bytes through codecs.encode, a call not admitted
        with pytest.raises(DataError, match="_codecs.encode"):
            decode_python(payload, CIFAR10, "batch")
        return
    x, y = decode_python(payload, CIFAR10, "batch")
    assert np.array_equal(x, images) and y.tolist() == labels.tolist()


def test_shared_references_cannot_expand_into_a_huge_array() -> None:
    row = list(range(IMAGE_ROW))
    payload = pickle.dumps({b"data": [row] * 1000, b"labels": [0] * 1000})  # 1000 references to one row
    with pytest.raises(DataError, match="rows of 3072 uint8 values"):
        decode_python(payload, CIFAR10, "batch")


def test_official_binary_checksums_are_the_published_ones() -> None:
    sums = SHARED_DATA / "cifar-10" / "SHA256SUMS-batches-bin"
    if not sums.is_file():
        pytest.skip(f"{sums} not found")
    published = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    for name in (*CIFAR10.binary_train, CIFAR10.binary_test):
        assert CIFAR10.official[f"{CIFAR10.binary_folder}/{name}"] == Digest("sha256", published[name])


def test_unofficial_binary_batches_are_refused(tmp_path: Path) -> None:
    write_folder(tmp_path / "cifar10", cifar10_files("binary"))  # well formed, but not the real files
    with pytest.raises(DataError, match=r"data_batch_1\.bin is corrupt or not the official file: SHA256"):
        load_cifar(CIFAR10, tmp_path, False)


def test_flipped_pixel_in_a_binary_batch_is_refused(tmp_path: Path, trusted: Trust) -> None:
    files = cifar10_files("binary")
    trusted(files)
    batch = bytearray(files["cifar-10-batches-bin/data_batch_1.bin"])
    batch[1000] ^= 0x01  # one bit of one pixel
    files["cifar-10-batches-bin/data_batch_1.bin"] = bytes(batch)
    write_folder(tmp_path / "cifar10", files)
    with pytest.raises(DataError) as error:
        load_cifar(CIFAR10, tmp_path, False)
    message = str(error.value)
    assert str(tmp_path / "cifar10" / "cifar-10-batches-bin" / "data_batch_1.bin") in message
    assert "not the official file" in message and "\n" not in message


@pytest.mark.parametrize("mode, suffix", [("w:xz", "tar.xz"), ("w:gz", "tar.gz")])
def test_truncated_archive_is_a_data_error(tmp_path: Path, trusted: Trust, mode: str, suffix: str) -> None:
    files = cifar10_files("binary")
    trusted(files)
    archive = tmp_path / "cifar10" / f"cifar-10-binary.{suffix}"
    write_archive(archive, files, mode)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"{archive.name} is a corrupt or truncated archive"):
        load_cifar(CIFAR10, tmp_path, False)


def test_garbage_under_an_archive_name_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "cifar-10").mkdir()
    (tmp_path / "cifar-10" / "cifar-10-binary.tar.xz").write_bytes(b"not an archive at all" * 100)
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.xz is a corrupt or truncated archive"):
        load_cifar(CIFAR10, tmp_path, False)


def test_data_dir_that_is_a_file_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        load_cifar(CIFAR10, tmp_path / "file", False)


def test_shared_layout_and_torchvision_root_are_recognised(tmp_path: Path, trusted: Trust) -> None:
    binary, python = cifar10_files("binary"), cifar10_files("python")
    trusted(binary | python)
    write_archive(tmp_path / "shared" / "cifar-10" / "cifar-10-binary.tar.xz", binary, "w:xz")
    write_folder(tmp_path / "torchvision", python)  # torchvision's root holds cifar-10-batches-py/
    for root in (tmp_path / "shared", tmp_path / "torchvision"):
        raw = DATASETS.get("cifar10")(root, False)
        assert raw.train_x.shape == (5 * N_TRAIN_BATCH, 3, 32, 32) and raw.test_y.equal(expected_raw()[2])


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("cifar10"), reason=f"CIFAR-10 not in {SHARED_DATA}")
def test_real_cifar10_passes_its_checksums() -> None:
    raw = DATASETS.get("cifar10")(SHARED_DATA, False)
    assert raw.train_x.shape == (50_000, 3, 32, 32) and raw.test_x.shape == (10_000, 3, 32, 32)
    assert torch.bincount(raw.test_y).tolist() == [1000] * 10
    assert set(raw.checksums) == {f"{CIFAR10.binary_folder}/{n}" for n in (*CIFAR10.binary_train, CIFAR10.binary_test)}


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


def test_decoded_cache_gives_the_decoded_bits_and_is_reused(tmp_path: Path, trusted: Trust, monkeypatch: pytest.MonkeyPatch) -> None:
    from prunebench.data import cifar

    files = cifar10_files("binary")
    trusted(files)
    write_archive(tmp_path / "cifar10" / "cifar-10-binary.tar.xz", files, "w:xz")
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    plain = load_cifar(CIFAR10, tmp_path, False, use_cache=False)
    assert not (tmp_path / "cache").exists()
    decoded = load_cifar(CIFAR10, tmp_path, False)
    (folder,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy"]

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    original = cifar.decode_cifar
    monkeypatch.setattr(cifar, "decode_cifar", no_decoding)
    mapped = load_cifar(CIFAR10, tmp_path, False)
    for raw in (decoded, mapped):
        assert raw.train_x[:].equal(plain.train_x[:]) and raw.test_x[:].equal(plain.test_x[:])  # standardized alike
        assert raw.train_y.equal(plain.train_y) and raw.test_y.equal(plain.test_y) and raw.checksums == plain.checksums
    if Path("/proc/self/maps").is_file():  # the images are mapped from the cache file, not copied
        assert str(folder / "train_x.npy") in Path("/proc/self/maps").read_text()

    # a damaged cache file is noticed (its SHA-256) and decoded again
    monkeypatch.setattr(cifar, "decode_cifar", original)
    with (folder / "train_x.npy").open("r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\x00" if handle.read(1) != b"\x00" else b"\x01")
    again = load_cifar(CIFAR10, tmp_path, False)
    assert again.train_x[:].equal(plain.train_x[:])


def test_decoded_cache_follows_the_source_and_an_unwritable_cache_is_no_error(tmp_path: Path, trusted: Trust, monkeypatch: pytest.MonkeyPatch) -> None:
    files = cifar10_files("binary")
    trusted(files)
    write_folder(tmp_path / "cifar10", files)
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    first = load_cifar(CIFAR10, tmp_path, False)
    changed = dict(files)
    images, labels = fake(N_TEST, 99)
    changed["cifar-10-batches-bin/test_batch.bin"] = binary_batch_bytes(images, labels)
    trusted(changed)
    write_folder(tmp_path / "cifar10", changed)
    second = load_cifar(CIFAR10, tmp_path, False)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # a new source, a new entry
    assert not second.test_x[:].equal(first.test_x[:]) and second.test_y.equal(torch.from_numpy(labels))
    (tmp_path / "blocked").write_text("a file where the cache folder would be")
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "blocked"))
    kept = load_cifar(CIFAR10, tmp_path, False)  # decoded and kept in memory instead
    assert kept.train_x[:].equal(second.train_x[:])
