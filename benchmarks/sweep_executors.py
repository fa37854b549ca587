"""Wall time of one sweep under the serial and the local (process pool) executor, side by side.

    python benchmarks/sweep_executors.py [--quick]

The same digits sweep runs from scratch under each executor (fresh results directories, so
nothing is reused): serial runs in this process with torch's default threads; local runs
one worker per core with one thread each. Prints both wall times and local's speedup.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from prunebench.executors import make_executor
from prunebench.experiment.runner import run_plan
from prunebench.experiment.sweep import plan_from_mapping

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


def timed_sweep(executor: str, workers: int, quick: bool) -> tuple[float, int]:
    config = dict(SWEEP)
    if quick:
        config["sweep"] = {**SWEEP["sweep"], "seed": [0]}
    plan = plan_from_mapping(config)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        started = time.perf_counter()
        statuses = run_plan(plan, results, make_executor(executor, plan.settings, results, workers), live=False)
        elapsed = time.perf_counter() - started
    if statuses["completed"] != len(plan.jobs):
        raise SystemExit(f"{executor}: not every run completed: {dict(statuses)}")
    return elapsed, len(plan.jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed instead of three")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    serial, runs = timed_sweep("serial", 1, args.quick)
    local, _ = timed_sweep("local", workers, args.quick)
    print(f"sweep: digits/mlp, {runs} runs (dense models included), {workers} cores")
    print(f"{'executor':<10}{'wall time (s)':>15}")
    print(f"{'serial':<10}{serial:>15.1f}")
    print(f"{'local':<10}{local:>15.1f}   ({workers} workers x 1 thread)")
    print(f"local speedup over serial: {serial / local:.2f}x")


if __name__ == "__main__":
    main()
