"""Ends the processes a driver's private Ray started when the driver is done or dies:
``python -m prunebench.executors.reaper DRIVER_PID RAY_DIR``.

Ray ties its GCS and raylet to the driver that started them, but not their agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``), which outlive a SIGKILLed driver and are
reparented to init, so they cannot be found as the driver's descendants. The driver gives its
private Ray a temp directory of its own (``RAY_DIR``). This process, in its own session so a
Ctrl-C does not reach it, waits for its stdin to close (the driver exited or died), then
SIGKILLs every process whose command line or open files name ``RAY_DIR`` (see ``names_dir``),
until a pass finds none, removes ``RAY_DIR`` and exits. No process of another driver names that
directory. Linux only (/proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

MAX_PASSES = 20  # a pass after the raylet is killed finds no new process; this only bounds a pathological case


def stat_of(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return int(fields[1]), int(fields[19])


def names_dir(pid: int, ray_dir: str) -> bool:
    """Whether ``pid``'s command line, or a file it holds open, names ``ray_dir``.

    The GCS and raylet name it in their arguments. A process the raylet forks holds the
    raylet's files (its logs, under ``ray_dir``) from birth and, once it runs, its own log files
    there as stdout and stderr: an agent renames its command line and may overwrite its
    environment, but keeps these.
    """
    try:
        if ray_dir.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or another user's process: not ours
        return False
    inside = ray_dir + os.sep
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(inside):
                return True
        except OSError:
            pass
    return False


def processes_naming(ray_dir: str, exclude: set[int]) -> dict[int, int]:
    """pid -> start time of every live process, outside ``exclude``, that names ``ray_dir``."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        pid = int(entry)
        before = stat_of(pid)
        if before is not None and names_dir(pid, ray_dir):
            found[pid] = before[1]
    return found


def kill_all(ray_dir: str, exclude: set[int]) -> int:
    """SIGKILL every process naming ``ray_dir`` until none is left; the number killed."""
    killed = 0
    for _ in range(MAX_PASSES):
        found = processes_naming(ray_dir, exclude)
        if not found:
            break
        for pid, started in found.items():
            now = stat_of(pid)
            if now is not None and now[1] == started:  # still the same process, not a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
        time.sleep(0.05)  # let the kills land before looking again
    return killed


def main(driver: int, ray_dir: str) -> None:
    while os.read(sys.stdin.fileno(), 1024):
        pass  # EOF: the driver is gone, or done with Ray
    kill_all(ray_dir, exclude={os.getpid(), driver})
    shutil.rmtree(ray_dir, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
