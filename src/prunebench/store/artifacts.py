"""Files written atomically (temp file + rename), so a crash never leaves half an artifact."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunebench.store.files import write_atomic

if TYPE_CHECKING:
    import torch

# torch is imported by the functions that read or write tensors: the JSON and digest helpers
# serve readers such as `prunebench results`, which must not pay for loading torch.


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """torch.save of plain tensors only, so :func:`load_tensors` needs no code execution.

    Returns the SHA-256 of the bytes written, the digest a result pairs itself with.
    """
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in tensors.items()}, buffer)
    payload = buffer.getvalue()
    write_atomic(path, payload)
    return hashlib.sha256(payload).hexdigest()


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def load_tensors_with_digest(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors and the SHA-256 of the very bytes they were read from (one read, no race)."""
    import torch

    payload = path.read_bytes()
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True), hashlib.sha256(payload).hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
