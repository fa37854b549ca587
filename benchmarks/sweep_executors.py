"""Wall time of a sweep under the serial and the local (process pool) executor, side by side.

    PRUNEBENCH_DATA=../shared/data python benchmarks/sweep_executors.py [--quick]

Each sweep runs from scratch under each executor (fresh results directories, so nothing is
reused): serial in this process with torch's default threads; local with one worker per core
and one thread each. Two sweeps: digits (runs of a tenth of a second, so worker start-up and
per-run data loading dominate) and MNIST LeNet-300-100 (runs of seconds; skipped without MNIST).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from prunebench.executors import make_executor
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping

SWEEP = {
    "dataset": "digits",
    "model": "mlp",
    "train": {"epochs": 30, "lr": 0.05, "batch_size": 64, "weight_decay": 1e-4},
    "finetune": {"epochs": 5, "lr": 0.01, "batch_size": 64},
    "sweep": {
        "prune.strategy": ["magnitude", "grad_magnitude", "act_magnitude"],
        "prune.compression": [2, 4, 8, 16, 24],
        "seed": [0, 1, 2],
    },
}


MNIST_SWEEP = {
    "dataset": "mnist",
    "model": "lenet-300-100",
    "train": {"epochs": 3, "lr": 0.05, "batch_size": 128, "weight_decay": 1e-4},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 128},
    "sweep": {"prune.strategy": ["magnitude", "grad_magnitude"], "prune.compression": [4, 16], "seed": [0, 1]},
}


def timed_sweep(config: dict, executor: str, workers: int, quick: bool) -> tuple[float, int]:
    if quick:
        config = {**config, "sweep": {**config["sweep"], "seed": [0]}}
    plan = plan_from_mapping(config)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        started = time.perf_counter()
        statuses = run_plan(plan, results, make_executor(executor, workers), live=False)
        elapsed = time.perf_counter() - started
    if statuses["completed"] != len(plan.jobs):
        raise SystemExit(f"{executor}: not every run completed: {dict(statuses)}")
    return elapsed, len(plan.jobs)


def mnist_available() -> bool:
    from prunebench.data import default_data_dir

    return (default_data_dir() / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed instead of several")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    sweeps = [("digits/mlp", SWEEP)]
    if mnist_available():
        sweeps.append(("mnist/lenet-300-100", MNIST_SWEEP))
    else:
        print("MNIST not found (set PRUNEBENCH_DATA): its sweep is skipped", file=sys.stderr)
    print(f"{workers} cores; serial: 1 process, torch default threads; local: {workers} workers x 1 thread")
    print(f"{'sweep':<22}{'runs':>6}{'serial (s)':>12}{'local (s)':>11}{'local speedup':>15}")
    for name, config in sweeps:
        serial, runs = timed_sweep(config, "serial", 1, args.quick)
        local, _ = timed_sweep(config, "local", workers, args.quick)
        print(f"{name:<22}{runs:>6}{serial:>12.1f}{local:>11.1f}{serial / local:>14.2f}x")


if __name__ == "__main__":
    main()
