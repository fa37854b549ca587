"""Files written atomically (temp file + rename), so a crash never leaves half an artifact."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


FILE_MODE = 0o644  # temporary files are created 0600; results are meant to be shared


def write_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(payload)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.chmod(tmp.name, FILE_MODE)
    os.replace(tmp.name, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """torch.save of plain tensors only, so :func:`load_tensors` needs no code execution."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp)
    os.chmod(tmp.name, FILE_MODE)
    os.replace(tmp.name, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)
