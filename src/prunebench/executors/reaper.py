"""Ends the processes a driver started when the driver dies: ``python -m prunebench.executors.reaper PID``.

Ray ties its GCS and raylet to the driver that started them, but not their agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``), which outlive a SIGKILLed driver. This
process, in its own session so a Ctrl-C does not reach it, records the driver's Ray
descendants every half second; when its stdin closes (the driver exited or died) it SIGKILLs every recorded
process that is still the same process (pid and start time), then exits. Linux only (/proc).
"""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

POLL_S = 0.5


def stat_of(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of ``root``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := stat_of(int(entry))) is not None:
            children.setdefault(found[0], []).append((int(entry), found[1]))
    result: dict[int, int] = {}
    stack = [root]
    while stack:
        for pid, started in children.get(stack.pop(), []):
            if pid not in result:
                result[pid] = started
                stack.append(pid)
    return result


def is_ray(pid: int) -> bool:
    try:
        return b"ray" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def main(driver: int) -> None:
    own = os.getpid()
    seen: dict[int, int] = {}
    while True:
        seen.update((pid, started) for pid, started in descendants(driver).items() if pid != own and is_ray(pid))
        readable, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if readable and not os.read(sys.stdin.fileno(), 1024):
            break  # EOF: the driver is gone, or done with Ray
    for pid, started in seen.items():
        found = stat_of(pid)
        if found is not None and found[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
