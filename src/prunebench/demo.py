"""``prunebench demo``: digits + mlp, four strategies at four compressions, one table."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from prunebench.config import ExperimentSpec, PruneSpec, RunSettings, TrainSpec
from prunebench.experiment import run_experiment

STRATEGIES = ("random", "magnitude", "grad_magnitude", "act_magnitude")
COMPRESSIONS = (2.0, 4.0, 8.0, 16.0)
DENSE_RECIPE = TrainSpec(epochs=30, lr=0.05, batch_size=64, weight_decay=1e-4)
FINETUNE_RECIPE = TrainSpec(epochs=5, lr=0.01, batch_size=64)


def demo_specs(seed: int = 0) -> list[ExperimentSpec]:
    return [
        ExperimentSpec(
            dataset="digits", model="mlp", seed=seed, train=DENSE_RECIPE, finetune=FINETUNE_RECIPE,
            prune=PruneSpec(strategy=strategy, compression=compression),
        )
        for strategy in STRATEGIES
        for compression in COMPRESSIONS
    ]


def run_demo(results_dir: Path, console: Console) -> list[dict]:
    started = time.perf_counter()
    results = [run_experiment(spec, RunSettings(), results_dir) for spec in demo_specs()]
    table = Table(title="digits / mlp: test top-1 after pruning and fine-tuning (global scope, seed 0)")
    for column in ("strategy", "target", "compression", "speedup", "dense", "pruned", "fine-tuned"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for r in results:
        table.add_row(
            r["spec"]["prune"]["strategy"], f"{r['target_compression']:g}x", f"{r['compression_ratio']:.2f}x",
            f"{r['theoretical_speedup']:.2f}x", f"{r['dense_top1']:.2%}",
            f"{r['pre_finetune_top1']:.2%}", f"{r['top1']:.2%}",
        )
    console.print(table)
    console.print(f"{len(results)} runs in {time.perf_counter() - started:.1f} s; results in {results_dir}")
    return results
