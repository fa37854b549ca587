"""What a result was produced with: versions, device, threads, host."""

from __future__ import annotations

import platform
import socket
from importlib import metadata
from typing import Any

import torch


def package_version() -> str:
    try:
        return metadata.version("prunebench")
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance(device: str) -> dict[str, Any]:
    return {
        "prunebench": package_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "device": device,
        "threads": torch.get_num_threads(),
    }
