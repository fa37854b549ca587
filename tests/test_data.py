import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, has_dataset
from prunebench.data import DATASETS, DataSplits, load_dataset
from prunebench.data import idx as idx_module
from prunebench.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_round_trip_and_bad_files() -> None:
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    assert np.array_equal(idx_module.read_idx(idx_bytes(images), "x"), images)
    with pytest.raises(DataError, match="not an IDX"):
        idx_module.read_idx(b"\x00\x00\x0d\x01abcd", "x")
    with pytest.raises(DataError, match="size does not match"):
        idx_module.read_idx(idx_bytes(images)[:-1], "x")


@pytest.fixture
def tiny_idx_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 12-train / 5-test IDX dataset whose checksums the loader is told to expect."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    contents = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(12) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(5),
    }
    sums = {}
    for name, array in contents.items():
        payload = gzip.compress(idx_bytes(array))
        (folder / name).write_bytes(payload)
        sums[name] = hashlib.sha256(payload).hexdigest()
    for name, digest in sums.items():  # the loader checks these instead of the official ones
        monkeypatch.setitem(idx_module.MNIST.sha256, name, digest)
    return tmp_path


def test_idx_loader_from_any_directory(tiny_idx_dataset: Path) -> None:
    data = load_dataset("mnist", data_dir=tiny_idx_dataset, val_fraction=0.25, download=False)
    assert data.train_x.shape == (9, 1, 28, 28) and data.val_x.shape == (3, 1, 28, 28)
    assert data.test_x.shape == (5, 1, 28, 28)
    assert data.test_y.tolist() == [0, 1, 2, 3, 4]
    assert set(data.checksums) == set(idx_module.MNIST.sha256)


def test_torchvision_layout_is_accepted(tiny_idx_dataset: Path) -> None:
    raw = tiny_idx_dataset / "MNIST" / "raw"
    shutil.move(tiny_idx_dataset / "mnist", raw)
    assert load_dataset("mnist", data_dir=tiny_idx_dataset, download=False).test_x.shape[0] == 5


def test_missing_files_name_the_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path / "fashion-mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "PRUNEBENCH_DATA" in message


def test_corrupt_file_is_detected(tiny_idx_dataset: Path) -> None:
    path = tiny_idx_dataset / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DataError, match="corrupt"):
        load_dataset("mnist", data_dir=tiny_idx_dataset, download=False)


@pytest.mark.parametrize("download", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_data_dir_that_is_a_file_is_one_data_error(tmp_path: Path, name: str, download: bool) -> None:
    afile = tmp_path / "data"
    afile.write_text("not a folder\n")
    with pytest.raises(DataError, match=f"^data_dir {re.escape(str(afile))} is a file; it must be the folder that holds {name}/$"):
        load_dataset(name, data_dir=afile, download=download)
    assert sorted(tmp_path.iterdir()) == [afile]


def planted(folder: Path, name: str, payload: bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write ``payload`` under an official name, with the checksum the loader is told to expect."""
    path = folder / "mnist" / name
    path.write_bytes(payload)
    monkeypatch.setitem(idx_module.MNIST.sha256, name, hashlib.sha256(payload).hexdigest())
    return path


@pytest.mark.parametrize(
    "damage", ["truncated gzip", "not gzip", "gzipped garbage", "gzipped IDX cut short", "empty"]
)
def test_a_damaged_idx_file_is_one_data_error_naming_it(
    tiny_idx_dataset: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    name = "train-images-idx3-ubyte.gz"
    whole = (tiny_idx_dataset / "mnist" / name).read_bytes()
    payload = {
        "truncated gzip": whole[: len(whole) // 2],
        "not gzip": b"<html>404 not found</html>",
        "gzipped garbage": gzip.compress(b"garbage" * 10),
        "gzipped IDX cut short": gzip.compress(gzip.decompress(whole)[:-10]),
        "empty": b"",
    }[damage]
    path = planted(tiny_idx_dataset, name, payload, monkeypatch)
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=tiny_idx_dataset, download=False)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message, message


def test_an_unreadable_idx_file_is_one_data_error_naming_it(
    tiny_idx_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests may run as root, whom chmod does not stop: the read itself is made to fail."""
    path = tiny_idx_dataset / "mnist" / "t10k-labels-idx1-ubyte.gz"
    real_open = Path.open

    def refusing_open(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing_open)
    with pytest.raises(DataError, match=f"^{re.escape(str(path))} cannot be read: Permission denied$"):
        load_dataset("mnist", data_dir=tiny_idx_dataset, download=False)


def test_validation_split_is_seeded_and_disjoint() -> None:
    x = torch.arange(100).float().view(100, 1)
    y = torch.arange(100) % 10
    a = DataSplits.from_tensors(train=(x, y), test=(x[:10], y[:10]), val_fraction=0.2, seed=1)
    b = DataSplits.from_tensors(train=(x, y), test=(x[:10], y[:10]), val_fraction=0.2, seed=1)
    c = DataSplits.from_tensors(train=(x, y), test=(x[:10], y[:10]), val_fraction=0.2, seed=2)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    assert a.val_x.shape[0] == 20 and a.train_x.shape[0] == 80
    assert not set(a.val_x.view(-1).tolist()) & set(a.train_x.view(-1).tolist())


def test_digits_is_embedded_and_standardized() -> None:
    data = load_dataset("digits", val_fraction=0.1)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert data.train_x.shape[0] + data.val_x.shape[0] + data.test_x.shape[0] == 1797
    assert abs(float(torch.cat([data.train_x, data.val_x]).mean())) < 0.05


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_datasets(name: str) -> None:
    if not has_dataset(name):
        pytest.skip(f"{name} not in {SHARED_DATA}")
    data = load_dataset(name, data_dir=SHARED_DATA, val_fraction=0.1, download=False)
    assert data.train_x.shape == (54_000, 1, 28, 28) and data.val_x.shape[0] == 6000
    assert data.test_x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(data.test_y).tolist() == (
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist" else [1000] * 10
    )


def test_every_dataset_is_registered() -> None:
    assert {"digits", "mnist", "fashion-mnist", "synthetic"} <= set(DATASETS.names())


def test_tests_find_real_data_through_either_variable(tmp_path: Path) -> None:
    from conftest import shared_data_dir

    repo = tmp_path / "repo"
    assert shared_data_dir({}, repo) == tmp_path / "shared" / "data"
    assert shared_data_dir({"PRUNEBENCH_DATA": "/d"}, repo) == Path("/d")
    assert shared_data_dir({"PRUNEBENCH_TEST_DATA": "/t", "PRUNEBENCH_DATA": "/d"}, repo) == Path("/t")
    assert shared_data_dir({"PRUNEBENCH_TEST_DATA": "", "PRUNEBENCH_DATA": "/d"}, repo) == Path("/d")
