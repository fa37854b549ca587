"""The reporting checklist (Blalock et al. 2020), evaluated on the data rather than promised."""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.report.aggregate import Group

MIN_LEVELS = 5
MIN_SEEDS = 3


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def evaluate_checklist(group: Group) -> list[Check]:
    curves = group.sorted_curves()
    fewest_levels = min((len(c.points) for c in curves), default=0)
    fewest_seeds = min((len(p.values) for c in curves for p in c.points.values()), default=0)
    controls_missing = []
    for curve in curves:
        if curve.role == "control":
            continue
        # A control is a control run of the same comparison: same recipe, schedule, structure, target kind.
        control = {t for c in curves if c.role == "control" and c.comparison() == curve.comparison() for t in c.points}
        missing = [curve.points[t].level for t in curve.points if t not in control]
        if missing:
            controls_missing.append(f"{curve.label} at {', '.join(missing)}")
    recipes = {c.retrain_recipe for c in curves if c.retrain_recipe is not None}
    return [
        Check(
            f"at least {MIN_LEVELS} {'sparsity' if group.is_lm else 'compression'} levels per curve",
            fewest_levels >= MIN_LEVELS,
            f"the sparsest curve has {fewest_levels} level(s)",
        ),
        Check(
            f"at least {MIN_SEEDS} seeds per point", fewest_seeds >= MIN_SEEDS,
            f"the thinnest point has {fewest_seeds} seed(s)",
        ),
        Check(
            "compression ratio and theoretical speedup both reported",
            all(p.compression and p.speedup for c in curves for p in c.points.values()),
            "every point carries both (definitions in docs/metrics.md)",
        ),
        Check(
            "dense model present", bool(group.dense),
            (f"dense {'perplexity' if group.is_lm else 'accuracy'} for {group.dense_seeds()} seed(s)"
             if group.dense else "no dense result"),
        ),
        Check(
            "random-pruning control at every level of every strategy", not controls_missing,
            "missing: " + "; ".join(controls_missing) if controls_missing else "present everywhere",
        ),
        Check(
            "every strategy recovered with the same recipe" if group.is_lm else "every strategy fine-tuned with the same recipe",
            len(recipes) <= 1,
            f"{len(recipes)} different retraining recipe(s) in this comparison",
        ),
    ]
