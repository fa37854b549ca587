"""CIFAR-10 loads in little memory: decoded once into the decoded cache, then memory-mapped.

Measured in fresh processes on the real files (the resident set before and after loading, its
file-backed and anonymous parts, and the peak during the load), since the tests' own process has
other datasets cached. The first process decodes the archive and writes the cache; the second
loads from it, as every later run does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA, has_dataset

MEASURE = """
import hashlib, json, sys
import prunebench.data as data

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

base = {key: status(key + ":") for key in ("VmRSS", "RssAnon", "RssFile")}
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # restart the peak (VmHWM) from here
splits = data.load_dataset("cifar10", data_dir=sys.argv[1], download=False)
after = {key: status(key + ":") - base[key] for key in base}
peak = status("VmHWM:") - base["VmRSS"]
batch = splits.train_x[:256]
print(json.dumps({
    "after": after["VmRSS"], "anon": after["RssAnon"], "file": after["RssFile"], "peak": peak,
    "images": splits.train_x.nbytes, "train": len(splits.train_x), "val": len(splits.val_x), "test": len(splits.test_x),
    "dtype": str(batch.dtype), "shape": list(batch.shape), "mean": float(batch.mean()), "std": float(batch.std()),
    "first": hashlib.sha256(batch.numpy().tobytes()).hexdigest(),
    "test_first": hashlib.sha256(splits.test_x[:256].numpy().tobytes()).hexdigest(),
}))
"""

UINT8_BYTES = 60_000 * 3 * 32 * 32  # 184 MB: CIFAR-10's train and test images, one byte per value
EXTRA_RSS = 150e6  # what loading may add to a process's resident set


def measure(env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(SHARED_DATA)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("cifar10"), reason=f"CIFAR-10 not in {SHARED_DATA}")
def test_real_cifar10_loads_in_under_150_mb_and_gives_the_in_memory_batches(tmp_path: Path) -> None:
    from prunebench.data.base import split_validation
    from prunebench.data.cifar import CIFAR10, load_cifar

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "PRUNEBENCH_CACHE": str(tmp_path)}
    first = measure(env)  # decodes the archive and writes the cache
    found = measure(env)  # memory-maps the cache
    assert (found["train"], found["val"], found["test"]) == (45_000, 5_000, 10_000)
    assert found["images"] == 50_000 * 3072  # the validation split shares the training images: no copy
    assert found["dtype"] == "torch.float32" and found["shape"] == [256, 3, 32, 32]
    assert abs(found["mean"]) < 0.1 and abs(found["std"] - 1) < 0.1  # standardized per batch
    # Loading from the cache touches no image page (the statistics are cached too): it reads the
    # labels and hashes the files in 1 MB chunks. A batch read maps in only its own pages.
    assert found["after"] < EXTRA_RSS and found["peak"] < EXTRA_RSS, found
    # Decoding: the uint8 images are written to the cache and dropped, the copy kept is mapped from
    # it; the peak holds them, one batch file and the xz decoder (353 MB measured before the cache).
    assert first["after"] < EXTRA_RSS, first
    assert first["peak"] < UINT8_BYTES + 250e6, first
    assert first["first"] == found["first"] and first["test_first"] == found["test_first"]
    # the same bits as the in-memory uint8 path, which decodes without the cache
    raw = load_cifar(CIFAR10, SHARED_DATA, False, use_cache=False)
    splits = split_validation(raw, 0.1, 0, "cifar10")
    assert hashlib.sha256(splits.train_x[:256].numpy().tobytes()).hexdigest() == found["first"]
    assert hashlib.sha256(splits.test_x[:256].numpy().tobytes()).hexdigest() == found["test_first"]
