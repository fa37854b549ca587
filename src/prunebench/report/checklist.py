"""The reporting checklist, evaluated on the data rather than promised.

From Blalock et al. 2020 ("What is the State of Neural Network Pruning?"): curves of several
levels, several seeds, compression and speedup, dense and random baselines, one recipe. From
Wang et al. 2023 ("Why is the State of Neural Network Pruning so Confusing?"): the ranking checked
across fine-tuning recipes and trainability right after pruning. From Frankle et al. 2021
("Pruning Neural Networks at Initialization: Why Are We Missing the Mark?"): each method against
its own layer-shuffled mask and its mask on fresh weights. From PruningBench (2024): accuracy at
matched speedups and what pruning cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.metrics.declared import TOP1
from prunebench.spec import SHUFFLE_SCHEDULES
from prunebench.pruning.structures import UNSTRUCTURED, random_controls
from prunebench.report.aggregate import Curve, Group, Point, shown
from prunebench.report.matched import matched_table
from prunebench.report.recipes import contexts, context_scores, rank_flips
from prunebench.report.stats import PairedTest
from prunebench.report.tables import ALPHA, sanity_tests

MIN_LEVELS = 5
MIN_SEEDS = 3
SANITY_CONTROLS = ("layer-shuffle", "reinit")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    absent: bool = False  # not run by this sweep: the detail says why and how; no verdict either way

    @property
    def state(self) -> str:
        return "NOT RUN" if self.absent else "PASS" if self.passed else "VIOLATED"


def setting(curve: Curve, key: str, default: str) -> str:
    value = curve.settings.get(key)
    return default if value is None else str(shown(value))


def admits(curve: Curve, control: str) -> bool:
    """Whether the sweep could have run ``control`` for this method curve (the rules of
    prunebench.plan.controls, read from the curve's settings)."""
    if curve.role != "method" or curve.strategy in random_controls():
        return False
    schedule = setting(curve, "prune.schedule", "one-shot")
    if control == "layer-shuffle":
        return setting(curve, "prune.structure", UNSTRUCTURED) == UNSTRUCTURED and schedule in SHUFFLE_SCHEDULES
    return setting(curve, "retrain.mode", "finetune") == "finetune" and schedule != "gradual"


def shortened(items: list[str], shown: int = 4) -> str:
    """The first few of a long list, and how many more: a checklist line stays readable."""
    more = len(items) - shown
    return "; ".join(items[:shown]) + (f"; and {more} more" if more > 0 else "")


def sanity_checks(group: Group) -> list[Check]:
    """Frankle et al. 2021: a method that does not beat its own layer-shuffled mask has learned a
    per-layer density, not which weights to keep; one that does not beat its mask on fresh weights
    gains nothing from the weights it inherited. Beaten means significantly better (Holm) at the
    sparsest level both ran, where the choice of weights matters most, and worse at none."""
    missing = []
    for curve in group.sorted_curves():
        for name in SANITY_CONTROLS:
            if not admits(curve, name):
                continue
            control = next((c for c in group.curves.values() if c.control == name and group.source_of(c) is curve), None)
            if control is None:
                missing.append(f"{name} of {curve.label}")
            elif set(curve.points) - set(control.points):
                levels = [curve.points[t].level for t in curve.points if t not in control.points]
                missing.append(f"{name} of {curve.label} at {', '.join(levels)}")
    admitted = any(admits(c, n) for c in group.curves.values() for n in SANITY_CONTROLS)
    if missing and not any(c.is_sanity_control for c in group.curves.values()):
        # the sweep asked for none (its controls are the default, random): absent by choice, not a failure
        return [Check(
            "layer-shuffle and reinit controls present for every method", False,
            "this sweep ran the random control only (the default); add controls: [random, layer-shuffle, reinit] "
            "to test whether each method beats its own layer-shuffled mask and its mask on fresh weights",
            absent=True,
        )]
    checks = [Check(
        "layer-shuffle and reinit controls present for every method", not missing,
        ("missing: " + shortened(missing) + " (add controls: [random, layer-shuffle, reinit])") if missing
        else "present at every level" if admitted else "no method here admits a layer-shuffle or reinit control",
    )]
    by_pair: dict[tuple[str, str], list[tuple[Point, PairedTest, float]]] = {}
    for method, control, level, test, q in sanity_tests(group):
        by_pair.setdefault((method.label, control.control or ""), []).append((method.points[level], test, q))
    if by_pair:
        beaten, not_beaten = [], []
        for (method, control), tested in by_pair.items():
            better = [p.level for p, t, q in tested if q < ALPHA and TOP1.better(t.difference.mean)]
            worse = [p.level for p, t, q in tested if q < ALPHA and TOP1.worse(t.difference.mean)]
            sparsest, test, q = tested[-1]
            won = q < ALPHA and TOP1.better(test.difference.mean) and not worse
            where = f"better at {', '.join(better)}" if better else "better at no level"
            if worse:
                where += f", worse at {', '.join(worse)}"
            (beaten if won else not_beaten).append(f"{method} vs its {control}: {where} of {len(tested)}")
        checks.append(Check(
            "every method beats its own layer-shuffle and reinit controls", not not_beaten,
            "; ".join([*(f"not beaten: {x}" for x in not_beaten), *(f"beaten: {x}" for x in beaten)])
            + f" (Holm over {sum(len(t) for t in by_pair.values())} paired tests, beaten = significantly better at the sparsest level)",
        ))
    return checks


def matched_speedups(group: Group, measured: bool) -> list[str]:
    """The common speedups (``2x``...) at which at least two curves have an interpolated top-1."""
    if measured and not group.has_latency():
        return []
    table = matched_table(group, measured)
    return [table.header[i] for i in range(2, len(table.header)) if sum(bool(r[i]) for r in table.rows) >= 2]


def runs_of(curves: list[Curve]) -> list[tuple[Point, int]]:
    return [(p, seed) for c in curves for p in c.points.values() for seed in p.values]


def reporting_checks(group: Group) -> list[Check]:
    """Trainability right after pruning (Wang et al. 2023), accuracy at matched speedups and the
    cost of pruning (PruningBench): recorded for every run, and comparable across methods."""
    runs = runs_of(group.sorted_curves())
    lacking = [p.level for p, seed in runs if seed not in p.jsv_mean]
    methods = ", ".join(sorted(m for m in group.jsv_methods if m)) or "no method recorded"
    checks = [Check(
        "trainability after pruning reported", bool(runs) and not lacking,
        f"mean Jacobian singular value and batch loss before retraining recorded for all {len(runs)} run(s) ({methods})"
        if not lacking else f"{len(lacking)} of {len(runs)} run(s) record no Jacobian singular values",
    )]
    shared = {measured: matched_speedups(group, measured) for measured in (False, True)}
    detail = [f"{'measured' if m else 'theoretical'} speedup at {', '.join(v)}" for m, v in shared.items() if v]
    if not group.has_latency():
        detail.append("no run measured latency, so not at the same measured speed")
    checks.append(Check(
        "accuracy compared at matched speedups", bool(shared[False] or shared[True]),
        "; ".join(detail) if shared[False] or shared[True] else "no two curves reach a common speedup",
    ))
    no_cost = [p.level for p, seed in runs if seed not in p.prune_peak_mb]
    checks.append(Check(
        "cost of pruning reported", bool(runs) and not no_cost,
        f"pruning and retraining wall time and pruning peak memory recorded for all {len(runs)} run(s)"
        if not no_cost else f"{len(no_cost)} of {len(runs)} run(s) record no cost (prune_s, retrain_s, prune_peak_mb)",
    ))
    return checks


def speed_check(group: Group) -> Check:
    """Classifiers: compression and theoretical speedup on every point (Blalock et al.). Language
    models: a MAC ratio of zeros in dense matrices is no speedup, so the check asks for timings."""
    points = [p for c in group.curves.values() for p in c.points.values()]
    if not group.is_lm:
        return Check("compression ratio and theoretical speedup both reported",
                     all(p.compression and p.speedup for p in points),
                     "every point carries both (definitions in docs/metrics.md)")
    timed = [p for p in points if p.measured_speedup]
    if not timed:
        return Check("measured speedup reported", False,
                     "no measured speedup: no run timed prefill (set latency: true); the MAC ratio of unstructured or "
                     "N:M zeros is not realized by dense kernels, so no speedup is claimed", absent=True)
    return Check("measured speedup reported", len(timed) == len(points),
                 f"prefill timed at {len(timed)} of {len(points)} point(s); the others: no measured speedup")


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
        speed_check(group),
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
    if not group.is_lm:
        checks += sanity_checks(group) + reporting_checks(group)
    return checks
