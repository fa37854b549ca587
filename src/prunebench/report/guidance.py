"""Which published reporting recommendations each comparison meets, in sentences a reviewer can paste.

A comparison is the runs that share the dataset, the model, the dense model and the fine-tuning
recipe (a context of prunebench.report.recipes under one of its recipes). Each recommendation
is judged from the data of that comparison, never promised:

Blalock, Gonzalez Ortiz, Frankle and Guttag 2020, "What is the State of Neural Network Pruning?"
(ShrinkBench): report compression ratio and theoretical speedup; several operating points (a
curve); several seeds with their spread; the same dense model and fine-tuning for every method;
random pruning and magnitude pruning as baselines; more than one dataset/architecture pair;
state the recipe.

Wang, Wang, Zhang, Liu and Fu 2023, "Why is the State of Neural Network Pruning so Confusing? On
the Fairness, Comparison Setup, and Trainability in Network Pruning": state the fine-tuning LR
and budget and hold them equal across methods; check the ranking under more than one fine-tuning
recipe (a larger fine-tuning LR alone can reorder methods); report trainability right after
pruning; fine-tune long enough (a budget that a longer one does not significantly improve).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from prunebench.metrics.declared import TOP1
from prunebench.report.aggregate import CONTROL_KEYS, Curve, Dense, Group, describe, differences
from prunebench.report.checklist import MIN_LEVELS, MIN_SEEDS, Check
from prunebench.report.recipes import RECIPE_KEYS, Context, context_scores, contexts, rank_flips, recipe_of
from prunebench.report.stats import paired_difference
from prunebench.report.tables import ci, pct, recipe_text

BLALOCK = "Blalock et al. 2020"
WANG = "Wang et al. 2023"
MAGNITUDE_BASELINES = ("magnitude", "l1_filter")  # weight magnitude, and its channel form (Li et al. 2017)
EPOCHS_KEY = "finetune.epochs"
BRIEF_KEYS = ("mode", "epochs", "lr", "lr_schedule", "batch_size", "optimizer", "momentum", "weight_decay")


@dataclass(frozen=True)
class Comparison:
    """The curves (methods and their random control) of one context under one recipe."""

    group: Group
    context: Context
    recipe: str
    curves: dict[str, Curve]  # method label -> curve
    title: str
    pairs: tuple[str, ...]  # every dataset / model pair of the report

    @property
    def methods(self) -> list[Curve]:
        return [c for c in self.curves.values() if c.role == "method"]


@dataclass(frozen=True)
class Verdict:
    source: str  # the paper
    recommendation: str
    met: bool
    sentence: str  # one full sentence, the reason included when it is not met


@dataclass(frozen=True)
class Guidance:
    comparison: str
    verdicts: list[Verdict]

    @property
    def met(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.met]

    @property
    def unmet(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.met]

    def text(self) -> str:
        """'Meets: ... Does not meet: ...', each recommendation a sentence with its source."""
        parts = []
        for heading, verdicts in (("Meets", self.met), ("Does not meet", self.unmet)):
            if verdicts:
                parts.append(f"{heading}: " + " ".join(cited(v) for v in verdicts))
        return f"{self.comparison}: meets {len(self.met)} of {len(self.verdicts)} recommendations. " + " ".join(parts)

    def markdown(self) -> str:
        lines = [f"### {self.comparison}", ""]
        for heading, verdicts in (("Meets", self.met), ("Does not meet", self.unmet)):
            lines += [f"{heading}:", "", *(f"- {cited(v)}" for v in verdicts), ""] if verdicts else []
        return "\n".join(lines)


def cited(verdict: Verdict) -> str:
    return f"{verdict.sentence[:-1]} ({verdict.source})."


def levels_of(curve: Curve) -> str:
    return ", ".join(p.level for p in curve.ordered())


def both_axes(c: Comparison) -> tuple[bool, str]:
    lacking = [f"{label} at {p.level}" for label, curve in c.curves.items() for p in curve.ordered()
               if not (p.compression and p.speedup)]
    if not lacking:
        return True, "It reports both the compression ratio and the theoretical speedup (dense MACs / effective MACs) at every point."
    return False, f"It does not report both the compression ratio and the theoretical speedup everywhere, because {'; '.join(lacking)} lack one."


def curve_of_levels(c: Comparison) -> tuple[bool, str]:
    label, fewest = min(c.curves.items(), key=lambda item: len(item[1].points))
    n = len(fewest.points)
    if n >= MIN_LEVELS:
        return True, f"It reports a curve of at least {n} operating points per method ({levels_of(fewest)}), not a single point."
    return False, (f"It does not report a curve of several operating points, because {label} has only {n} level(s) "
                   f"({levels_of(fewest)}; at least {MIN_LEVELS} recommended).")


def seeds(c: Comparison) -> tuple[bool, str]:
    label, point = min(((label, p) for label, curve in c.curves.items() for p in curve.ordered()), key=lambda x: len(x[1].values))
    n = len(point.values)
    where = f"{label} at {point.level}"
    if n >= MIN_SEEDS:
        return True, f"It reports the spread over seeds: every point has at least {n} seeds, with a 95% confidence interval."
    if n == 1:
        return False, f"It does not report spread over seeds, because {where} has only 1 seed (at least {MIN_SEEDS} recommended)."
    return False, (f"It does not report spread over enough seeds, because {where} has only {n} seeds "
                   f"(at least {MIN_SEEDS} recommended).")


def dense_of(c: Comparison) -> Dense | None:
    """The dense result the comparison's runs pruned: the entry whose every setting its runs share
    (a dense row names its checkpoint's digest ``checkpoint_sha256``, a run ``dense.sha256``)."""
    settings = next(iter(c.curves.values())).settings
    for dense in c.group.dense.values():
        if (dense.top1 or dense.perplexity) and all(
                settings.get("dense.sha256" if k == "checkpoint_sha256" else k) == v for k, v in dense.settings.items()):
            return dense
    return None


def same_dense_and_finetune(c: Comparison) -> tuple[bool, str]:
    everywhere = {m for methods in c.context.recipes.values() for m in methods}
    absent = sorted(everywhere - set(c.curves))
    dense = dense_of(c)
    recipes = {curve.retrain_recipe for curve in c.curves.values()}
    reasons = []
    if dense is None:
        reasons.append("no dense result is stored for the dense model its runs pruned")
    if len(recipes) > 1:
        reasons.append(f"its runs record {len(recipes)} different retraining recipes")
    if absent:
        reasons.append(f"{', '.join(absent)} ran only under another recipe")
    if reasons or dense is None:
        return False, f"It does not give every method the same dense model and fine-tuning, because {'; '.join(reasons)}."
    return True, (f"Every method prunes the same dense model ({len(dense.top1 or dense.perplexity)} seed(s), each seed's "
                  f"methods pruning that seed's checkpoint) and is fine-tuned with the same recipe.")


def baselines(c: Comparison) -> tuple[bool, str]:
    missing = []
    for label, curve in c.curves.items():
        if curve.role != "method":
            continue
        control = {t for other in c.curves.values() if other.role == "control" and other.comparison() == curve.comparison()
                   for t in other.points}
        lacking = [curve.points[t].level for t in curve.points if t not in control]
        if lacking:
            missing.append(f"a random-pruning control for {label} at {', '.join(lacking)}")
    magnitude = sorted({curve.name for curve in c.methods if curve.strategy in MAGNITUDE_BASELINES})
    if not magnitude:
        missing.append(f"a magnitude-pruning baseline ({' or '.join(MAGNITUDE_BASELINES)})")
    if missing:
        return False, f"It does not include every baseline, because it lacks {'; '.join(missing)}."
    return True, f"It includes the random-pruning control at every level of every method and the magnitude baseline ({', '.join(magnitude)})."


def several_pairs(c: Comparison) -> tuple[bool, str]:
    if len(c.pairs) > 1:
        return True, f"It is one of {len(c.pairs)} dataset/architecture pairs in this report ({', '.join(c.pairs)})."
    return False, f"It does not compare methods on more than one dataset/architecture pair, because this report holds only {c.group.title}."


def recipe(c: Comparison) -> dict[str, object] | None:
    ids = {curve.retrain_recipe for curve in c.curves.values()}
    recorded = [c.group.retrain_recipes.get(i) for i in ids if i is not None]
    return recorded[0] if recorded and all(recorded) and len(recorded) == len(ids) else None


def brief(recipe: dict[str, object]) -> str:
    """The settings a reader compares first (the provenance table lists the rest)."""
    return recipe_text({k: v for k, v in recipe.items() if k in BRIEF_KEYS})


def states_recipe(c: Comparison) -> tuple[bool, str]:
    found = recipe(c)
    if not found:
        return False, "It does not state the fine-tuning recipe, because its results do not record one."
    dense = "; dense training " + "; ".join(brief(r) for r in c.group.dense_recipes.values()) if c.group.dense_recipes else ""
    return True, f"It states the recipe: retraining {brief(found)}{dense} (versions in the provenance table)."


def lr_and_budget(c: Comparison) -> tuple[bool, str]:
    found = recipe(c)
    if not found or "lr" not in found or "epochs" not in found:
        return False, "It does not state the fine-tuning LR and budget, because its results do not record them."
    schedule = f", {found['lr_schedule']} schedule" if "lr_schedule" in found else ""
    return True, (f"It states the fine-tuning LR ({found['lr']}{schedule}) and budget ({found['epochs']} epoch(s)) "
                  f"and holds them equal across all {len(c.curves)} compared curves.")


def ranking_across_recipes(c: Comparison) -> tuple[bool, str]:
    if len(c.context.recipes) < 2:
        return False, ("It does not check whether the ranking survives another fine-tuning recipe, because only one "
                       "recipe was run (sweep finetune.lr or finetune.epochs to check it).")
    others = sorted(r for r in c.context.recipes if r != c.recipe)
    flips = [f for f in rank_flips(context_scores(c.context)) if c.recipe in (f.first, f.second)]
    if not flips:
        found = "no two methods swap places"
    else:
        found = "; ".join(
            f"{f.a} and {f.b} swap places between {f.first} and {f.second} "
            f"({'a significant flip' if f.significant else f'not significant in both recipes, n = {min(f.first_diff.n, f.second_diff.n)}'})"
            for f in flips)
    return True, f"It checks the ranking against {len(others)} other fine-tuning recipe(s) ({', '.join(others)}): {found}."


def trainability(c: Comparison) -> tuple[bool, str]:
    runs = [(p, s) for curve in c.curves.values() for p in curve.points.values() for s in p.values]
    lacking = [p for p, s in runs if s not in p.jsv_mean]
    if runs and not lacking:
        methods = ", ".join(sorted(m for m in c.group.jsv_methods if m))
        return True, (f"It reports trainability right after pruning for all {len(runs)} runs: the mean Jacobian singular "
                      f"value ({methods}) and the batch loss before fine-tuning, plotted against final top-1.")
    return False, f"It does not report trainability after pruning, because {len(lacking)} of {len(runs)} runs record no Jacobian singular values."


def without_epochs(recipe: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in recipe.items() if k != EPOCHS_KEY}


def budget(c: Comparison) -> tuple[bool, str]:
    """A budget is sufficient when the next longer one (the recipe otherwise the same) raises no
    method's area under top-1 vs log2 compression significantly (paired per seed); the longest
    budget, when it raised none significantly over the next shorter one (a plateau)."""
    mine = recipe_of(next(iter(c.curves.values())))
    epochs = mine.get(EPOCHS_KEY)
    if epochs is None:
        return False, "It does not show that the fine-tuning budget is sufficient, because its runs record no finetune.epochs."
    budgets = {}  # the context's other recipes that differ from this one in the epochs only -> their epochs
    for name, curves in c.context.recipes.items():
        other = recipe_of(next(iter(curves.values())))
        if name != c.recipe and EPOCHS_KEY in other and without_epochs(other) == without_epochs(mine):
            budgets[name] = json.loads(other[EPOCHS_KEY])
    e = json.loads(epochs)
    longer = sorted((n, r) for r, n in budgets.items() if n > e)
    shorter = sorted(((n, r) for r, n in budgets.items() if n < e), reverse=True)
    if not longer and not shorter:
        return False, (f"It does not show that its fine-tuning budget of {e} epoch(s) is sufficient, because no other budget "
                       f"was run with this recipe (sweep finetune.epochs to check it).")
    scores = context_scores(c.context)
    n, other = (longer or shorter)[0]
    low, high = (c.recipe, other) if longer else (other, c.recipe)
    gains = []
    for method in scores[low]:
        if method in scores[high]:
            diff = paired_difference(dict(scores[high][method]), dict(scores[low][method]))
            if diff is not None:
                gains.append((method, diff))
    significant = [(m, d) for m, d in gains if d.n >= 2 and TOP1.surely_better(d.ci_low, d.ci_high)]
    lo, hi = (e, n) if longer else (n, e)
    if significant:
        listed = "; ".join(f"{m} by {pct(d.mean)} points {ci(d)}" for m, d in significant)
        if longer:
            return False, f"It does not fine-tune long enough, because {hi} instead of {lo} epoch(s) still raise {listed}."
        return False, (f"It does not show that {e} epoch(s) suffice, because going from {lo} to {hi} epoch(s) still raised "
                       f"{listed}, and no longer budget was run.")
    if not gains:
        return False, f"It does not show that its fine-tuning budget of {e} epoch(s) is sufficient, because no method ran under both budgets."
    largest = max(gains, key=lambda x: x[1].mean)
    return True, (f"Its fine-tuning budget of {e} epoch(s) is sufficient: {hi} instead of {lo} epoch(s) change no method "
                  f"significantly (largest change {largest[0]}, {pct(largest[1].mean)} points {ci(largest[1])}, "
                  f"n = {largest[1].n}).")


Rule = Callable[[Comparison], tuple[bool, str]]
RECOMMENDATIONS: tuple[tuple[str, str, Rule], ...] = (
    (BLALOCK, "compression ratio and theoretical speedup", both_axes),
    (BLALOCK, "several operating points (a curve)", curve_of_levels),
    (BLALOCK, "several seeds with their spread", seeds),
    (BLALOCK, "the same dense model and fine-tuning for every method", same_dense_and_finetune),
    (BLALOCK, "random and magnitude baselines", baselines),
    (BLALOCK, "more than one dataset/architecture pair", several_pairs),
    (BLALOCK, "the recipe stated", states_recipe),
    (WANG, "fine-tuning LR and budget stated and equal across methods", lr_and_budget),
    (WANG, "ranking checked across fine-tuning recipes", ranking_across_recipes),
    (WANG, "trainability after pruning reported", trainability),
    (WANG, "a sufficient fine-tuning budget", budget),
)


def comparisons(group: Group, pairs: tuple[str, ...]) -> list[Comparison]:
    """Every (context, recipe) of the group, titled by what sets it apart from the others."""
    found = contexts(group)
    shared = [next(iter(next(iter(ctx.recipes.values())).values())).settings for ctx in found]
    keys = differences([{k: v for k, v in s.items() if not k.startswith((*CONTROL_KEYS, *RECIPE_KEYS))} for s in shared])
    result = []
    for ctx, settings in zip(found, shared):
        where = describe(settings, keys)
        for name, curves in sorted(ctx.recipes.items()):
            parts = [group.title, where, "" if name == "the recipe" else name]
            result.append(Comparison(group, ctx, name, curves, ", ".join(p for p in parts if p), pairs))
    return result


def evaluate_guidance(group: Group, pairs: tuple[str, ...]) -> list[Guidance]:
    """Per comparison of the group, each recommendation met or not, with its sentence.

    ``pairs``: the report's dataset / model titles (the more-than-one-pair recommendation)."""
    return [Guidance(c.title, [Verdict(source, name, *rule(c)) for source, name, rule in RECOMMENDATIONS])
            for c in comparisons(group, pairs) if c.curves]


def guidance_markdown(title: str, checks: list[Check], guidance: list[Guidance]) -> str:
    """The checklist and the recommendations of one dataset / model, as the report's Markdown file."""
    lines = [f"# {title}: reporting checklist and recommendations", "", "## Reporting checklist", ""]
    lines += [f"- {c.state}: {c.name} — {c.detail}" for c in checks]
    lines += ["", f"## Recommendations met and not met ({BLALOCK}; {WANG})", ""]
    for entry in guidance:
        lines += [entry.markdown(), "Paste-ready:", "", f"> {entry.text()}", ""]
    return "\n".join(lines)


__all__ = ["Guidance", "Verdict", "evaluate_guidance", "guidance_markdown"]
