"""Sending files in checksummed parts: split here, join there, nothing written from a damaged set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import join_parts  # noqa: E402
import split_parts  # noqa: E402


def small_array(tmp_path: Path) -> tuple[np.ndarray, Path]:
    array = np.random.default_rng(0).integers(0, 256, size=(7, 3, 4, 4), dtype=np.uint8)
    path = tmp_path / "images.npy"
    np.save(path, array)
    return array, path


def test_split_then_join_gives_the_files_back_bit_for_bit(tmp_path: Path) -> None:
    array, path = small_array(tmp_path)
    labels = tmp_path / "labels.bin"
    labels.write_bytes(bytes(range(7)))
    assert split_parts.main(["--file", f"a/images.npy={path}", "--file", f"labels.bin={labels}",
                             "--out", str(tmp_path / "parts"), "--part-bytes", "100"]) == 0
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    total = path.stat().st_size + 7
    assert manifest["total_bytes"] == total and len(manifest["parts"]) == -(-total // 100)
    assert all(p["bytes"] <= 100 for p in manifest["parts"])
    assert join_parts.main([str(tmp_path / "parts"), "--out", str(tmp_path / "there")]) == 0
    assert np.array_equal(np.load(tmp_path / "there" / "a" / "images.npy"), array)
    assert (tmp_path / "there" / "labels.bin").read_bytes() == bytes(range(7))


def test_a_damaged_or_missing_part_is_named_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = small_array(tmp_path)
    split_parts.main(["--file", f"images.npy={path}", "--out", str(tmp_path / "parts"), "--part-bytes", "64"])
    part = tmp_path / "parts" / "part-001.bin"
    payload = bytearray(part.read_bytes())
    payload[3] ^= 1
    part.write_bytes(bytes(payload))
    assert join_parts.main([str(tmp_path / "parts"), "--out", str(tmp_path / "there")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("join_parts: error: ") and "part-001.bin" in err and err.count("\n") == 1
    assert not (tmp_path / "there").exists()
    part.unlink()
    (tmp_path / "parts" / "part-003.bin").unlink()
    assert join_parts.main([str(tmp_path / "parts"), "--out", str(tmp_path / "there")]) == 2
    assert "missing 2 of" in capsys.readouterr().err and not (tmp_path / "there").exists()


def test_split_refuses_parts_too_large_to_travel_and_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = small_array(tmp_path)
    assert split_parts.main(["--file", f"images.npy={path}", "--out", str(tmp_path / "p"), "--part-bytes", str(64 << 20)]) == 2
    assert "--part-bytes" in capsys.readouterr().err and not (tmp_path / "p").exists()
    (tmp_path / "p").mkdir()
    assert split_parts.main(["--file", f"images.npy={path}", "--out", str(tmp_path / "p")]) == 2
    assert "--out" in capsys.readouterr().err
    assert split_parts.main(["--file", f"../x={path}", "--out", str(tmp_path / "q")]) == 2
    assert "--file" in capsys.readouterr().err and not (tmp_path / "q").exists()


def shared_data() -> Path | None:
    for candidate in (os.environ.get("PRUNEBENCH_TEST_DATA"), os.environ.get("PRUNEBENCH_DATA"), str(REPO.parent / "shared" / "data")):
        if candidate and (Path(candidate) / "cifar-10").is_dir():
            return Path(candidate)
    return None


@pytest.mark.slow  # decodes CIFAR-10 (once; then its decoded cache) and writes 184 MB twice
def test_cifar10_travels_as_its_published_batches_and_loads_the_same(tmp_path: Path) -> None:
    data = shared_data()
    if data is None:
        pytest.skip("no CIFAR-10 in the shared data folder")
    import torch

    from prunebench.data.cifar import CIFAR10, load_cifar

    done = subprocess.run([sys.executable, "scripts/split_parts.py", "--cifar10", str(data), "--out", str(tmp_path / "parts")],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    parts = sorted((tmp_path / "parts").glob("part-*.bin"))
    assert len(parts) == 4 and all(p.stat().st_size <= 48 << 20 for p in parts)
    done = subprocess.run([sys.executable, "scripts/join_parts.py", str(tmp_path / "parts"), "--out", str(tmp_path / "data")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    original = load_cifar(CIFAR10, data, allow_download=False, use_cache=True)
    rebuilt = load_cifar(CIFAR10, tmp_path / "data", allow_download=False, use_cache=False)  # checks the published SHA-256s
    assert torch.equal(original.train_x.pixels, rebuilt.train_x.pixels)  # type: ignore[union-attr]
    assert torch.equal(original.test_y, rebuilt.test_y) and torch.equal(original.train_y, rebuilt.train_y)
