"""``prunebench demo``: a small comparison on digits (runs anywhere), then its report."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from prunebench.executors import make_executor
from prunebench.metrics.declared import TOP1
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.report.write import write_report
from prunebench.report.aggregate import build_groups
from prunebench.report.results import open_db

TRAIN_LOGGER = "prunebench.train"  # the training loop's epoch lines (prunebench.train.loop)
DEMO_CONFIG: dict[str, Any] = {
    "dataset": "digits",
    "model": "mlp",
    "train": {"epochs": 30, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 64},
    "prune": {"scope": "global"},
    "finetune": {"epochs": 5, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 64},
    "sweep": {
        "prune.strategy": ["magnitude", "grad_magnitude", "act_magnitude"],  # random is added as the control
        "prune.compression": [2, 4, 8, 16, 24],  # the MLP's unprunable parameters cap it at 30x
        "seed": [0, 1, 2],
    },
}


def summary_table(results_dir: Path) -> Table:
    group = build_groups(open_db(results_dir).rows())[0]
    levels = sorted({p.target.value: p.level for c in group.curves.values() for p in c.points.values()}.items())
    table = Table(title=f"{group.title}: test {TOP1.header()}, mean over seeds, after pruning and fine-tuning")
    table.add_column("strategy")
    for _, label in levels:
        table.add_column(label, justify="right")
    for curve in group.sorted_curves():
        by_value = {p.target.value: p for p in curve.points.values()}
        table.add_row(
            curve.label,
            *(f"{by_value[v].top1_estimate().mean * 100:.1f}" if v in by_value else "" for v, _ in levels),
        )
    return table


@contextmanager
def training_lines_off_a_terminal(stream: TextIO) -> Iterator[None]:
    """Off a terminal (a log, CI) the demo prints its runs' start and end lines only: the
    per-epoch and in-epoch lines of 63 short runs would be thousands of lines."""
    logger = logging.getLogger(TRAIN_LOGGER)
    before = logger.level
    if not stream.isatty():
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)


def run_demo(results_dir: Path, executor_name: str, console: Console) -> int:
    started = time.perf_counter()
    plan = plan_from_mapping(DEMO_CONFIG)
    with training_lines_off_a_terminal(sys.stderr):
        statuses = run_plan(plan, results_dir, make_executor(executor_name), live=False)
    report = write_report(results_dir, results_dir / "report")
    console.print(summary_table(results_dir))
    console.print(
        f"{len(plan.jobs)} runs ({statuses['completed']} completed) in {time.perf_counter() - started:.1f} s; "
        f"results in {results_dir}",
        soft_wrap=True,
    )
    console.print(f"report: {report}", soft_wrap=True)
    return 0 if statuses["completed"] == len(plan.jobs) else 1
