"""Published results, reproduced: ``prunebench reproduce --list`` and ``prunebench reproduce NAME``.

Each reproduction's configuration lives in ``prunebench/reproduce/configs/NAME.yaml``; its runs
go through the ordinary pipeline (``run_experiment``), so their artifacts are cached like any run.
They hold the results directory's lock (``store.lock``) as ``prunebench run`` does, so a
reproduction and a run never write to one results directory at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from prunebench.spec import RunSettings
from prunebench.data import DATA_ENV
from prunebench.errors import ConfigError
from prunebench.metrics.latency import torch_threads
from prunebench.reproduce import deep_compression, han, lth
from prunebench.reproduce.common import Check, Report, load_reproduction_config
from prunebench.store.lock import results_lock

RunFn = Callable[[list[int], RunSettings, Path], Report]
REPRODUCTIONS: dict[str, RunFn] = {lth.NAME: lth.run, han.NAME: han.run, deep_compression.NAME: deep_compression.run}


def list_reproductions() -> dict[str, str]:
    """Name -> one-line summary."""
    return {name: load_reproduction_config(name)["summary"] for name in REPRODUCTIONS}


def run_settings(data_dir: Path | None = None, threads: int | None = None) -> RunSettings:
    """Settings for a reproduction: ``$PRUNEBENCH_DATA`` when no folder is given.

    ``threads`` travels in the settings; nothing global changes until a reproduction runs.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    if data_dir is None and os.environ.get(DATA_ENV):
        data_dir = Path(os.environ[DATA_ENV])
    return RunSettings(data_dir=data_dir, threads=threads)


def run_reproduction(name: str, seeds: int, settings: RunSettings, results_dir: Path) -> Report:
    """Run (or reuse) every run of reproduction ``name`` over seeds 0..seeds-1; save its report.

    Everything runs with ``settings.threads`` torch threads, the controls trained outside the
    pipeline included; the caller's thread count is restored afterwards.
    """
    if name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {name!r} (known: {', '.join(sorted(REPRODUCTIONS))})")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    with results_lock(results_dir), torch_threads(settings.threads):  # a run on the same directory waits
        report = REPRODUCTIONS[name](list(range(seeds)), settings, results_dir)
        report.save(results_dir / "reproduce" / name)
    return report


__all__ = ["REPRODUCTIONS", "Check", "Report", "list_reproductions", "run_reproduction", "run_settings"]
