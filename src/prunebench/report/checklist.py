"""The reporting checklist (Blalock et al. 2020), evaluated on the data rather than promised."""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.report.aggregate import Group
from prunebench.report.recipes import contexts, context_scores, rank_flips

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
    # A reinit control trains with its own recipe by design: the rule is for the compared runs.
    recipes = {c.retrain_recipe for c in curves if c.retrain_recipe is not None and not c.is_sanity_control}
    # Several recipes are fair when every method ran under each of them and they are compared recipe by recipe.
    unbalanced = []
    for context in contexts(group):
        every = {m for methods in context.recipes.values() for m in methods}
        for recipe, methods in sorted(context.recipes.items()):
            if set(methods) != every:
                unbalanced.append(f"{', '.join(sorted(every - set(methods)))} missing under {recipe}")
    recipe_detail = f"{len(recipes)} different retraining recipe(s) in this comparison"
    if len(recipes) > 1:
        recipe_detail += "; " + ("; ".join(unbalanced) if unbalanced else "every strategy ran under each, compared recipe by recipe")
    checks = [
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
        Check("every strategy recovered with the same recipe" if group.is_lm else "every strategy fine-tuned with the same recipe",
              not unbalanced, recipe_detail),
    ]
    several = [c for c in contexts(group) if len(c.recipes) > 1]
    if several:
        flips = [f for c in several for f in rank_flips(context_scores(c))]
        real = [f for f in flips if f.significant]
        listed = "; ".join(f"{f.a} vs {f.b} ({f.first} -> {f.second}{', significant' if f.significant else ''})" for f in flips)
        checks.append(Check(
            "ranking stable across fine-tuning recipes", not real,
            f"{len(flips)} flip(s), {len(real)} significant: {listed}" if flips else
            "no two methods swap places between recipes (by the area under top-1 vs log2 compression)",
        ))
    return checks
