"""Shared pieces of the benchmarks: results with targets, interleaved timing, reports.

Every ratio is measured side by side in one run: the compared variants alternate in short
blocks, each round yields one ratio, and the reported figure is the median over rounds. On a
shared machine a disturbance then hits both sides of a round instead of biasing one variant.

The default clock is the process's CPU time: on a machine shared with other work, wall time
also counts the time a process waited for a core, which says more about the neighbours than
about the code. With one torch thread, CPU time is the compute the variant itself did.

Every figure is shown beside its physical floor: the bytes the measured work cannot avoid
moving, divided by the memory bandwidth measured in the same process (a copy between two
buffers of the size the work touches, so caches help the floor as much as the work).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

Goal = Literal["<=", "<", ">=", "=="]
ClockName = Literal["cpu", "wall"]
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
Status = Literal["pass", "miss", "info", "skip"]


@dataclass(frozen=True)
class Result:
    """One measured figure, its target (if it has one) and what it was measured on."""

    benchmark: str
    name: str
    measured: float | None
    target: float | None = None
    goal: Goal | None = None
    unit: str = "x"
    spread: tuple[float, float] | None = None  # 25th and 75th percentile over rounds
    detail: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    floor: float | None = None  # the best the figure could be: bytes moved / measured bandwidth
    floor_note: str = ""  # how the floor was computed

    @property
    def status(self) -> Status:
        if self.measured is None:
            return "skip"
        if self.target is None or self.goal is None:
            return "info"
        met = {
            "<=": self.measured <= self.target,
            "<": self.measured < self.target,
            ">=": self.measured >= self.target,
            "==": self.measured == self.target,
        }[self.goal]
        return "pass" if met else "miss"

    def measured_text(self) -> str:
        if self.measured is None:
            return "-"
        text = f"{self.measured:.3f}{self.unit}" if self.unit == "x" else f"{self.measured:g}{self.unit}"
        if self.spread:
            text += f" [{self.spread[0]:.3f}-{self.spread[1]:.3f}]"
        return text

    def floor_text(self) -> str:
        if self.floor is None:
            return "-"
        return f"{self.floor:.3f}{self.unit}" if self.unit == "x" else f"{self.floor:g}{self.unit}"

    def target_text(self) -> str:
        if self.target is None or self.goal is None:
            return "-"
        return f"{self.goal} {self.target:g}{self.unit if self.unit == 'x' else ''}"


def skipped(benchmark: str, name: str, reason: str) -> Result:
    return Result(benchmark=benchmark, name=name, measured=None, detail=f"skipped: {reason}")


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """25th and 75th percentiles; both equal the value when there is only one."""
    if len(values) < 2:
        return (values[0], values[0])
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[0], q[2])


def interleaved_times(
    variants: Mapping[str, Callable[[], None]], rounds: int, repeats: int, clock: ClockName = "cpu"
) -> dict[str, list[float]]:
    """Seconds per call of each variant in each round.

    Each round runs every variant ``repeats`` times in a block; the order of the blocks
    rotates from round to round, so no variant always runs first or last.
    """
    now = CLOCKS[clock]
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            call = variants[name]
            start = now()
            for _ in range(repeats):
                call()
            times[name].append((now() - start) / repeats)
    return times


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two variants measured in the same rounds."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def repeats_for(call: Callable[[], None], block_seconds: float, clock: ClockName = "cpu") -> int:
    """How many calls fill about ``block_seconds`` (at least one), after one timed call."""
    now = CLOCKS[clock]
    start = now()
    call()
    once = max(now() - start, 1e-6)
    return max(1, round(block_seconds / once))


@dataclass(frozen=True)
class Bandwidth:
    """Copy bandwidth measured here: bytes read plus bytes written per second."""

    bytes_per_second: float
    buffer_bytes: int

    def seconds_for(self, moved_bytes: float) -> float:
        return moved_bytes / self.bytes_per_second

    def text(self) -> str:
        return f"{self.bytes_per_second / 1e9:.1f} GB/s (copy of {self.buffer_bytes / 2**20:.1f} MiB, measured here)"


def measure_bandwidth(buffer_bytes: int, clock: ClockName = "cpu", rounds: int = 7) -> Bandwidth:
    """The best of ``rounds`` timed copies between two buffers of ``buffer_bytes``.

    The best, not the median: the floor is what the hardware can do, so disturbances from other
    work may only raise it, never make it look lower.
    """
    now = CLOCKS[clock]
    entries = max(buffer_bytes // 4, 1)
    source, target = torch.ones(entries), torch.empty(entries)
    target.copy_(source)  # first touch of the pages: not timed
    repeats = max(1, (64 << 20) // (entries * 4))  # small buffers: several copies per timing
    best = math.inf
    for _ in range(rounds):
        start = now()
        for _ in range(repeats):
            target.copy_(source)
        best = min(best, (now() - start) / repeats)
    return Bandwidth(bytes_per_second=2 * entries * 4 / max(best, 1e-9), buffer_bytes=entries * 4)


def environment(threads: int, clock: ClockName) -> dict[str, object]:
    """What the numbers were measured on, recorded with every report."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads,
        "clock": "process CPU time" if clock == "cpu" else "wall time",
        "cpu_count": os.cpu_count(),
        "processor": cpu_name(),
        "platform": platform.platform(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (platform.processor() is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(results: Sequence[Result]) -> str:
    rows = [
        "| benchmark | figure | measured [IQR] | floor | target | status | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        detail = f"{r.detail}; floor: {r.floor_note}" if r.floor_note else r.detail
        rows.append(
            f"| {r.benchmark} | {r.name} | {r.measured_text()} | {r.floor_text()} | {r.target_text()} "
            f"| {r.status} | {detail} |"
        )
    return "\n".join(rows)


def markdown_report(results: Sequence[Result], env: Mapping[str, object], command: str) -> str:
    lines = [
        "# prunebench benchmarks",
        "",
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
        markdown_table(results),
        "",
    ]
    return "\n".join(lines)


def json_report(results: Sequence[Result], env: Mapping[str, object], command: str) -> str:
    payload = {
        "command": command,
        "environment": dict(env),
        "results": [{**asdict(r), "status": r.status} for r in results],
    }
    return json.dumps(payload, indent=2)
