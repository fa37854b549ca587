"""Pre-retrain top-1 of a channel-pruning sweep per strategy and scope: mean, 95% CI over seeds,
and the paired difference to ``l1_filter`` with ``scope: layer`` (same dense model per seed).

    python benchmarks/channel_recon_summary.py RESULTS_DIR [--save benchmarks/results/NAME.json]

Reads every ``<run>/result.json`` under RESULTS_DIR (``prunebench run ... --results RESULTS_DIR``)
and prints a Markdown table; ``--save`` also writes the per-run figures it used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

ORDER = ("l1_filter", "channel_lasso", "thinet", "random_channel")
REFERENCE = ("l1_filter", "layer")


@dataclass(frozen=True)
class Run:
    run_id: str
    strategy: str
    scope: str
    seed: int
    dense_top1: float
    pre_retrain_top1: float
    theoretical_speedup: float
    prune_seconds: float


def interval(values: list[float]) -> str:
    """Mean ± the half-width of its 95% Student-t interval."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    half = float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.2f} ± {half:.2f}"


def load(results: Path) -> list[Run]:
    runs = []
    for path in sorted(results.glob("*/result.json")):
        result = json.loads(path.read_text())
        accuracy, prune = result["accuracy"], result["spec"]["prune"]
        if accuracy.get("pre_retrain_top1") is None:  # a dense run
            continue
        runs.append(Run(
            result["run_id"], prune["strategy"], prune.get("scope", "global"), result["spec"].get("seed", 0),
            accuracy["dense_top1"], accuracy["pre_retrain_top1"], result["macs"]["theoretical_speedup"],
            result["timings"]["prune"],
        ))
    return runs


def table(runs: list[Run]) -> str:
    by: dict[tuple[str, str], dict[int, Run]] = {}
    for run in runs:
        by.setdefault((run.strategy, run.scope), {})[run.seed] = run
    seeds = sorted({run.seed for run in runs})
    dense = [100 * next(r for r in runs if r.seed == s).dense_top1 for s in seeds]
    lines = [
        f"| strategy | scope | top-1 % per seed ({', '.join(map(str, seeds))}) | mean ± 95% CI | minus `l1_filter` (layer), paired | theoretical speedup | prune s |",
        "|---|---|---|---|---|---|---|",
        f"| dense | | {', '.join(f'{v:.2f}' for v in dense)} | {interval(dense)} | | 1.00 | |",
    ]
    rank = {name: i for i, name in enumerate(ORDER)}
    for key in sorted(by, key=lambda k: (k[1] != "layer", rank.get(k[0], len(ORDER)), k)):
        rows = [by[key][s] for s in seeds if s in by[key]]
        top1 = [100 * r.pre_retrain_top1 for r in rows]
        paired = ""
        if key != REFERENCE and REFERENCE in by:
            paired = interval([100 * (r.pre_retrain_top1 - by[REFERENCE][r.seed].pre_retrain_top1) for r in rows])
        speedup = statistics.mean(r.theoretical_speedup for r in rows)
        seconds = statistics.mean(r.prune_seconds for r in rows)
        lines.append(
            f"| `{key[0]}` | {key[1]} | {', '.join(f'{v:.2f}' for v in top1)} | {interval(top1)} | {paired} | {speedup:.3f} | {seconds:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    runs = load(args.results)
    print(table(runs))
    if args.save:
        args.save.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=1) + "\n")


if __name__ == "__main__":
    main()
