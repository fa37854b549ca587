"""Files written atomically (temp file + rename), so a crash never leaves half an artifact.

A temp file is named ``.<name>.<pid>.<random>.tmp`` beside its target. The writer removes it
when the write fails (a full disk) or is interrupted; a writer killed mid-write (SIGKILL, an
OOM kill) cannot, so :func:`remove_leftovers` deletes the temp files whose writer is provably
gone: the name has this pattern and no process has that pid any more.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger("prunebench")

FILE_MODE = 0o644  # temporary files are created 0600; results are meant to be shared
TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"\..+\.(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp")


def write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temp file; an OSError names ``path``, and leaves no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:  # ENOSPC from write()
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_leftovers(folders: list[Path]) -> list[Path]:
    """Delete the temp files in ``folders`` left by writers that no longer run; returns them.

    Only for a caller that knows no writer it started is running (the holder of the results
    lock, before it starts any): a live pid, even one reused by an unrelated process, keeps its file.
    """
    removed = []
    for folder in folders:
        for path in folder.glob(f".*{TEMP_SUFFIX}"):
            match = TEMP_NAME.fullmatch(path.name)
            if match is None or int(match["pid"]) == os.getpid() or pid_alive(int(match["pid"])):
                continue
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by a killed writer, e.g. %s", len(removed), removed[0])
    return removed
