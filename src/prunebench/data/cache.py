"""Decoded datasets kept as .npy files and memory-mapped: decode once, then load in a second.

A dataset whose decoding is slow (CIFAR's compressed archives) is decoded once into uint8 arrays
written under ``$PRUNEBENCH_CACHE`` (default ``~/.cache/prunebench/decoded``), atomically (a
temporary folder renamed into place), with a ``meta.json`` recording the SHA-256 of the source
files it was decoded from and of each array file. A later load reuses it only when the source
still has that SHA-256 and every array file still matches its own; otherwise it decodes again.

The arrays are memory-mapped (copy-on-write: nothing is ever written back), so their pages belong
to the file: the kernel reads them in as they are touched and may drop them again under memory
pressure. They count in a process's resident set (as ``RssFile``, not ``RssAnon``) once touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "PRUNEBENCH_CACHE"

log = logging.getLogger("prunebench")

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    """``$PRUNEBENCH_CACHE`` if set, else ``~/.cache/prunebench/decoded``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "prunebench" / "decoded"


def file_sha256(path: Path) -> str:
    """Read in chunks: hashing a file adds no more than a chunk to memory."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sources_sha256(paths: Iterable[Path]) -> str:
    """One digest of several source files (in the order given)."""
    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()


def load(folder: Path, source_sha256: str) -> tuple[Arrays, dict[str, Any]] | None:
    """The cached arrays (memory-mapped) and extra data, or None if absent, stale or damaged."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("source_sha256") != source_sha256:
            return None
        files: dict[str, str] = meta["files"]
        if any(file_sha256(folder / f"{name}.npy") != digest for name, digest in files.items()):
            log.warning("decoded cache %s is damaged; decoding again", folder)
            return None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False) for name in files}
        return arrays, meta["extra"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(folder: Path, source_sha256: str, arrays: Arrays, extra: dict[str, Any]) -> bool:
    """Write the arrays and their meta.json into ``folder`` atomically; False if it cannot."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    except OSError as exc:
        log.warning("cannot write the decoded cache under %s (%s); keeping the data in memory", folder.parent, exc)
        return False
    try:
        files = {}
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
            files[name] = file_sha256(staging / f"{name}.npy")
        meta = {"source_sha256": source_sha256, "files": files, "extra": extra}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():  # stale or damaged: replaced whole
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        return True
    except OSError as exc:
        if (folder / "meta.json").is_file():  # another process wrote it first
            return True
        log.warning("cannot write the decoded cache %s (%s); keeping the data in memory", folder, exc)
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cached(
    name: str, source_sha256: str, decode: Callable[[], tuple[Arrays, dict[str, Any]]], root: Path | None = None,
) -> tuple[Arrays, dict[str, Any]]:
    """``decode()``'s arrays and extra (JSON) data, from the cache when it holds them for this
    source, else decoded, written to the cache and read back memory-mapped."""
    folder = (root or cache_dir()) / f"{name}-{source_sha256[:16]}"
    found = load(folder, source_sha256)
    if found is not None:
        return found
    arrays, extra = decode()
    if save(folder, source_sha256, arrays, extra):
        found = load(folder, source_sha256)
        if found is not None:
            return found  # the decoded copy is dropped: only file-backed pages stay
    return arrays, extra


__all__ = ["CACHE_ENV", "cache_dir", "cached", "file_sha256", "sources_sha256"]
