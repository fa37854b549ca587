"""One writer per results directory (and per dense checkpoint): OS-level advisory locks.

``flock`` is released by the kernel when its holder exits for any reason, SIGKILL included,
so a crashed run never blocks the next one. A second process that finds the lock held says who
holds it (pid, host, start time) and waits; Ctrl-C stops the wait. POSIX only (Linux, macOS),
and on NFS only where the client maps flock to NFS locks (Linux does).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

log = logging.getLogger("prunebench")

LOCK_FILE = ".prunebench.lock"


def holder_of(fd: int) -> str:
    """Who wrote the lock file last: the holder, unless it has only just taken the lock."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%H:%M:%S", time.localtime(owner["since"]))
        return f"pid {owner['pid']} on {owner['host']}, since {started}"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent); ``what`` names it in the log.

    An OSError taking it (a full disk) names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s is held by %s; waiting for it to finish (%s)", what, holder_of(fd), path)
                fcntl.flock(fd, fcntl.LOCK_EX)
                log.warning("%s is free; continuing", what)
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a stale name would mislead the next waiter
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def results_lock(results_dir: Path) -> AbstractContextManager[None]:
    """The lock of one results directory, held by the process that plans and records its runs.

    Executor workers write run folders on that process's behalf and never take it.
    """
    return exclusive(results_dir / LOCK_FILE, f"results directory {results_dir}")


def dense_lock(folder: Path) -> AbstractContextManager[None]:
    """Held while a dense checkpoint is checked and, if need be, trained and written.

    Workers of one sweep take it, so one of them trains a missing checkpoint and the others
    load it instead of training their own copy.
    """
    return exclusive(folder / LOCK_FILE, f"dense checkpoint {folder.name}")
