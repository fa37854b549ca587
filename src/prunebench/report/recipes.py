"""Rankings per fine-tuning recipe, and where two methods swap places between recipes.

Wang et al. 2023: a larger fine-tuning LR (or budget) can change which method looks best. A
recipe is a curve's ``finetune.*`` and ``retrain.*`` settings; curves that agree in everything
else (dense recipe, schedule, structure, target kind...) are one context, ranked once per recipe
by their summary number (mean top-1 over the log2-compression range, per seed). A flip is a pair
of methods whose order differs between two recipes; it is *significant* when the paired
difference is significant in each recipe with opposite signs (95% intervals exclude zero), and
the interaction (the change of the difference between recipes, paired per seed) is given too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from prunebench.metrics.declared import COMPRESSION, TOP1
from prunebench.report.aggregate import CONTROL_KEYS, Curve, Group, describe, differences
from prunebench.report.stats import Estimate, estimate, paired_difference
from prunebench.report.tables import Table, area_per_seed, ci, pct

RECIPE_KEYS = ("finetune.", "retrain.")

Scores = Mapping[str, Mapping[str, Mapping[int, float]]]  # recipe -> method -> seed -> value


@dataclass(frozen=True)
class Flip:
    a: str
    b: str
    first: str  # recipe where a leads
    second: str  # recipe where b leads
    first_diff: Estimate  # a - b under ``first`` (positive)
    second_diff: Estimate  # a - b under ``second`` (negative)
    interaction: Estimate | None  # (a - b | first) - (a - b | second), paired per seed

    @property
    def significant(self) -> bool:
        return self.first_diff.n >= 2 and self.second_diff.n >= 2 and self.first_diff.ci_low > 0 and self.second_diff.ci_high < 0


def rank_flips(scores: Scores) -> list[Flip]:
    """Every (pair of methods, pair of recipes) whose mean paired difference changes sign."""
    flips = []
    recipes = sorted(scores)
    methods = sorted({m for by_method in scores.values() for m in by_method})
    for a, b in itertools.combinations(methods, 2):
        diffs: dict[str, Estimate] = {}
        for recipe in recipes:
            if a in scores[recipe] and b in scores[recipe]:
                diff = paired_difference(dict(scores[recipe][a]), dict(scores[recipe][b]))
                if diff is not None:
                    diffs[recipe] = diff
        for r1, r2 in itertools.combinations(sorted(diffs), 2):
            d1, d2 = diffs[r1], diffs[r2]
            if d1.mean == 0 or d2.mean == 0 or (d1.mean > 0) == (d2.mean > 0):
                continue
            first, second = (r1, r2) if d1.mean > 0 else (r2, r1)
            change = {s: (scores[first][a][s] - scores[first][b][s]) - (scores[second][a][s] - scores[second][b][s])
                      for s in set(scores[first][a]) & set(scores[first][b]) & set(scores[second][a]) & set(scores[second][b])}
            flips.append(Flip(a, b, first, second, diffs[first], diffs[second], estimate(list(change.values())) if change else None))
    return flips


@dataclass
class Context:
    """Curves that share everything but the method and the recipe."""

    recipes: dict[str, dict[str, Curve]]  # recipe label -> method label -> curve


def recipe_of(curve: Curve) -> dict[str, str]:
    return {k: v for k, v in curve.settings.items() if k.startswith(RECIPE_KEYS)}


def contexts(group: Group) -> list[Context]:
    """The group's compared curves (methods and the random control, not the sanity controls) by
    context, with recipes and methods labelled by what varies among them."""
    curves = [c for c in group.sorted_curves() if not c.is_sanity_control]
    by_context: dict[tuple[tuple[str, str], ...], list[Curve]] = {}
    for curve in curves:
        key = tuple(sorted((k, v) for k, v in curve.settings.items()
                           if not k.startswith(CONTROL_KEYS) and not k.startswith(RECIPE_KEYS)))
        by_context.setdefault(key, []).append(curve)
    found = []
    for members in by_context.values():
        recipe_keys = differences([recipe_of(c) for c in members])
        method_keys = differences([{k: v for k, v in c.settings.items() if k.startswith(CONTROL_KEYS)} for c in members],
                                  hidden=("prune.strategy",))
        recipes: dict[str, dict[str, Curve]] = {}
        for curve in members:
            recipe = describe(curve.settings, recipe_keys) or "the recipe"
            setting = describe(curve.settings, method_keys)
            recipes.setdefault(recipe, {})[f"{curve.name} ({setting})" if setting else curve.name] = curve
        found.append(Context(recipes))
    return found


def context_scores(context: Context) -> dict[str, dict[str, dict[int, float]]]:
    return {recipe: {method: area_per_seed(curve) for method, curve in methods.items()}
            for recipe, methods in context.recipes.items()}


def ranking_table(group: Group, context: Context) -> Table:
    """Methods x recipes: the rank and the summary number (mean ± 95% half-width) under each."""
    scores = context_scores(context)
    recipes = sorted(scores)
    methods = sorted({m for by_method in scores.values() for m in by_method})
    ranks: dict[str, dict[str, int]] = {}
    for recipe in recipes:
        means = {m: estimate(list(v.values())).mean for m, v in scores[recipe].items() if v}
        ranks[recipe] = {m: i + 1 for i, m in enumerate(sorted(means, key=lambda m: TOP1.best_first(means[m])))}
    rows = []
    for method in methods:
        cells = []
        for recipe in recipes:
            values = scores[recipe].get(method)
            if not values:
                cells.append("")
                continue
            e = estimate(list(values.values()))
            half = "" if e.n < 2 or math.isnan(e.half_width) else f" ± {pct(e.half_width)}"
            cells.append(f"#{ranks[recipe][method]}: {pct(e.mean)}{half}")
        rows.append([method, *cells])
    return Table(f"{group.title}: ranking per fine-tuning recipe (area under {TOP1.label} vs log2 {COMPRESSION.label}, {TOP1.shown_unit})",
                 ["method", *recipes], rows)


def flips_table(group: Group, flips: list[Flip]) -> Table:
    rows = [
        [f"{f.a} vs {f.b}", f"{f.first} -> {f.second}", f"{pct(f.first_diff.mean)} {ci(f.first_diff)}",
         f"{pct(f.second_diff.mean)} {ci(f.second_diff)}",
         "n/a" if f.interaction is None else f"{pct(f.interaction.mean)} {ci(f.interaction)}",
         "significant flip" if f.significant else f"not significant in both recipes (n = {min(f.first_diff.n, f.second_diff.n)})"]
        for f in flips
    ] or [["none: no two methods swap places between recipes", "", "", "", "", ""]]
    header = ["methods (a vs b)", "a leads -> b leads", "a - b, first (points, 95% CI)", "a - b, second",
              "change of a - b (paired)", "verdict"]
    return Table(f"{group.title}: ranking flips between fine-tuning recipes", header, rows)


def recipe_tables(group: Group) -> tuple[list[Table], list[Flip]]:
    """One ranking table per context with more than one recipe, and the flips table (if any)."""
    tables, flips = [], []
    for context in contexts(group):
        if len(context.recipes) < 2:
            continue
        tables.append(ranking_table(group, context))
        flips += rank_flips(context_scores(context))
    if tables:
        tables.append(flips_table(group, flips))
    return tables, flips
