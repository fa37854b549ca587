"""Files written atomically (temp file + rename), so a crash never leaves half an artifact."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644  # temporary files are created 0600; results are meant to be shared


def write_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(payload)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.chmod(tmp.name, FILE_MODE)
    os.replace(tmp.name, path)
