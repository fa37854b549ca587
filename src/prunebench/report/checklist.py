"""The reporting checklist (Blalock et al. 2020), evaluated on the data rather than promised."""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.experiment.sweep import CONTROL_STRATEGY
from prunebench.report.aggregate import Group

MIN_LEVELS = 5
MIN_SEEDS = 3


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def evaluate_checklist(group: Group) -> list[Check]:
    series = sorted(group.series)
    fewest_levels = min((len(group.series[s]) for s in series), default=0)
    seeds_per_point = [len(p.top1) for s in series for p in group.series[s].values()]
    fewest_seeds = min(seeds_per_point, default=0)
    controls_missing = []
    for strategy, scope in series:
        if strategy == CONTROL_STRATEGY:
            continue
        control = {lvl for (name, _), points in group.series.items() if name == CONTROL_STRATEGY for lvl in points}
        missing = [lvl for lvl in group.series[(strategy, scope)] if lvl not in control]
        if missing:
            controls_missing.append(f"{strategy}/{scope} at {', '.join(f'{m:g}x' for m in missing)}")
    return [
        Check(
            f"at least {MIN_LEVELS} compression levels per curve", fewest_levels >= MIN_LEVELS,
            f"the sparsest curve has {fewest_levels} level(s)",
        ),
        Check(
            f"at least {MIN_SEEDS} seeds per point", fewest_seeds >= MIN_SEEDS,
            f"the thinnest point has {fewest_seeds} seed(s)",
        ),
        Check(
            "compression ratio and theoretical speedup both reported",
            all(p.compression and p.speedup for s in series for p in group.series[s].values()),
            "every point carries both (definitions in docs/metrics.md)",
        ),
        Check(
            "dense model present", bool(group.dense_top1),
            f"dense accuracy for {len(group.dense_top1)} seed(s)" if group.dense_top1 else "no dense result",
        ),
        Check(
            "random-pruning control at every level of every strategy", not controls_missing,
            "missing: " + "; ".join(controls_missing) if controls_missing else "present everywhere",
        ),
        Check(
            "every strategy fine-tuned with the same recipe", len(group.finetune_ids) <= 1,
            f"{len(group.finetune_ids)} different fine-tuning recipe(s) in this comparison",
        ),
    ]
