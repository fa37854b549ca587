"""What a result was produced with: versions, device, threads, host."""

from __future__ import annotations

import platform
import socket
import subprocess
from functools import cache
from pathlib import Path
from importlib import metadata
from typing import Any

import torch

from prunebench.plugins import loaded_plugins


def package_version() -> str:
    try:
        return metadata.version("prunebench")
    except metadata.PackageNotFoundError:
        return "unknown"


@cache
def git_commit() -> str | None:
    """The commit of prunebench's own source, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(device: str) -> dict[str, Any]:
    return {
        "prunebench": package_version(),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "device": device,
        "threads": torch.get_num_threads(),
        "plugins": loaded_plugins(),
    }
