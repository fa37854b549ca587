"""Reporting guidance: each recommendation met or not, derived from the data, and the checklist
items for sanity controls, trainability, matched speedups and cost."""

import json

from prunebench.record import Target
from prunebench.report.aggregate import Curve, Dense, Group, Point, label_curves
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.guidance import evaluate_guidance, guidance_markdown
from prunebench.report.page import Section, render

LEVELS = (2, 4, 8, 16, 32)
SEEDS = (0, 1, 2)
WOBBLE = (0.0, 0.004, -0.003)  # per-seed noise, so intervals have a width


def curve(strategy: str, base: float, lr: float = 0.01, epochs: int = 1, role: str = "method", seeds=SEEDS,
          levels=LEVELS, control: str | None = None, drop: float = 0.01, traced: bool = True) -> Curve:
    """top-1 = base - drop * log2(level) (+ a seed's wobble); every field the report reads."""
    settings = {"dataset": '"synthetic"', "model": '"mlp"', "prune.strategy": json.dumps(strategy),
                "prune.scope": '"global"', "prune.shuffle": json.dumps(control == "layer-shuffle"),
                "retrain.mode": json.dumps("reinit" if control == "reinit" else "finetune"),
                "finetune.lr": json.dumps(lr), "finetune.epochs": json.dumps(epochs), "target.kind": '"compression"'}
    c = Curve(strategy, role, settings, f"r-{lr}-{epochs}")  # type: ignore[arg-type]
    c.control = control if control else ("random" if role == "control" else None)
    for i, level in enumerate(levels):
        point = Point(Target(kind="compression", value=float(level)))
        for seed in seeds:
            point.top1[seed] = base - drop * i + WOBBLE[seed % 3]
            point.compression[seed] = float(level)
            point.speedup[seed] = float(level) * 0.9
            point.prune_s[seed], point.retrain_s[seed] = 0.1, 1.0
            if traced:
                point.jsv_mean[seed] = 1.0 / level
                point.prune_peak_mb[seed] = 5.0
        c.points[json.dumps(float(level))] = point
    return c


def group_of(*curves: Curve, seeds=SEEDS) -> Group:
    group = Group("synthetic", "mlp")
    for c in curves:
        group.curves[tuple(sorted(c.settings.items()))] = c
        lr, epochs = json.loads(c.settings["finetune.lr"]), json.loads(c.settings["finetune.epochs"])
        group.retrain_recipes[c.retrain_recipe or ""] = {"mode": "finetune", "epochs": epochs, "lr": lr,
                                                         "lr_schedule": "constant", "batch_size": 64}
    group.dense[()] = Dense({"dataset": '"synthetic"', "model": '"mlp"'}, {s: 0.99 for s in seeds})
    group.dense_recipes["d"] = {"epochs": 10, "lr": 0.05}
    group.jsv_methods.add("exact")
    label_curves(group)
    return group


def verdicts(group: Group, pairs=("synthetic / mlp", "mnist / lenet5")) -> dict[str, dict[str, tuple[bool, str]]]:
    """comparison title -> recommendation -> (met, sentence)."""
    return {g.comparison: {v.recommendation: (v.met, v.sentence) for v in g.verdicts} for g in evaluate_guidance(group, pairs)}


def fair_pair(lr: float = 0.01, epochs: int = 1, snip: float = 0.9, seeds=SEEDS) -> list[Curve]:
    return [curve("magnitude", 0.95, lr, epochs, seeds=seeds), curve("snip", snip, lr, epochs, seeds=seeds),
            curve("random", 0.8, lr, epochs, role="control", seeds=seeds)]


def test_a_careful_comparison_meets_every_recommendation() -> None:
    # Two budgets (1 and 4 epochs) that give the same top-1: ranking checked, budget sufficient.
    (found,) = [verdicts(group_of(*fair_pair(epochs=1), *fair_pair(epochs=4)))["synthetic / mlp, finetune.epochs=1"]]
    assert all(met for met, _ in found.values()), {k: s for k, (m, s) in found.items() if not m}
    assert len(found) == 11
    assert "budget (1 epoch(s))" in found["fine-tuning LR and budget stated and equal across methods"][1]
    assert "4 instead of 1 epoch(s) change no method significantly" in found["a sufficient fine-tuning budget"][1]
    assert found["ranking checked across fine-tuning recipes"][1].endswith("no two methods swap places.")


def test_one_seed_is_named_as_no_spread_over_seeds() -> None:
    one = verdicts(group_of(*fair_pair(seeds=(0,)), seeds=(0,)))["synthetic / mlp"]
    met, sentence = one["several seeds with their spread"]
    assert not met and sentence.startswith("It does not report spread over seeds, because") and "only 1 seed" in sentence
    two = verdicts(group_of(*fair_pair(seeds=(0, 1)), seeds=(0, 1)))["synthetic / mlp"]
    assert not two["several seeds with their spread"][0] and "only 2 seeds" in two["several seeds with their spread"][1]
    three = verdicts(group_of(*fair_pair()))["synthetic / mlp"]
    assert three["several seeds with their spread"][0]


def test_a_missing_random_control_or_magnitude_baseline_is_named() -> None:
    no_random = verdicts(group_of(*fair_pair()[:2]))["synthetic / mlp"]["random and magnitude baselines"]
    assert not no_random[0]
    assert "a random-pruning control for magnitude at 2x, 4x, 8x, 16x, 32x" in no_random[1]
    assert "random-pruning control for snip" in no_random[1] and "magnitude-pruning baseline" not in no_random[1]
    no_magnitude = verdicts(group_of(*fair_pair()[1:]))["synthetic / mlp"]["random and magnitude baselines"]
    assert not no_magnitude[0] and "lacks a magnitude-pruning baseline (magnitude or l1_filter)" in no_magnitude[1]
    partial = fair_pair()
    del partial[2].points[json.dumps(32.0)]
    lacking = verdicts(group_of(*partial))["synthetic / mlp"]["random and magnitude baselines"]
    assert not lacking[0] and "for magnitude at 32x" in lacking[1] and "at 2x" not in lacking[1]


def test_a_rank_flip_between_two_recipes_is_named_and_one_recipe_is_not_a_check() -> None:
    # snip trails magnitude under lr 0.01 and leads it under lr 0.001, on every seed.
    group = group_of(*fair_pair(lr=0.01, snip=0.9), *fair_pair(lr=0.001, snip=0.97))
    found = verdicts(group)
    met, sentence = found["synthetic / mlp, finetune.lr=0.01"]["ranking checked across fine-tuning recipes"]
    assert met and "magnitude and snip swap places between finetune.lr=0.01 and finetune.lr=0.001 (a significant flip)" in sentence
    stable = verdicts(group_of(*fair_pair(lr=0.01), *fair_pair(lr=0.001)))["synthetic / mlp, finetune.lr=0.01"]
    assert stable["ranking checked across fine-tuning recipes"][1].endswith("no two methods swap places.")
    single = verdicts(group_of(*fair_pair()))["synthetic / mlp"]["ranking checked across fine-tuning recipes"]
    assert not single[0] and "only one recipe was run" in single[1]


def test_a_budget_a_longer_one_still_improves_is_not_sufficient() -> None:
    short = fair_pair(epochs=1)
    long = [curve("magnitude", 0.97, epochs=4), curve("snip", 0.9, epochs=4), curve("random", 0.8, epochs=4, role="control")]
    found = verdicts(group_of(*short, *long))
    met, sentence = found["synthetic / mlp, finetune.epochs=1"]["a sufficient fine-tuning budget"]
    assert not met and sentence.startswith("It does not fine-tune long enough, because 4 instead of 1 epoch(s) still raise magnitude by 2.00 points")
    assert "snip" not in sentence  # snip gained nothing
    met, sentence = found["synthetic / mlp, finetune.epochs=4"]["a sufficient fine-tuning budget"]
    assert not met and "going from 1 to 4 epoch(s) still raised magnitude" in sentence and "no longer budget was run" in sentence
    alone = verdicts(group_of(*short))["synthetic / mlp"]["a sufficient fine-tuning budget"]
    assert not alone[0] and "no other budget was run" in alone[1]


def test_trainability_pairs_dense_and_recipe_flip_with_the_data() -> None:
    untraced = fair_pair()
    untraced[1] = curve("snip", 0.9, traced=False)
    found = verdicts(group_of(*untraced), pairs=("synthetic / mlp",))["synthetic / mlp"]
    assert not found["trainability after pruning reported"][0]
    assert "5 of 45 runs record no Jacobian singular values" in found["trainability after pruning reported"][1]
    assert not found["more than one dataset/architecture pair"][0]
    assert "holds only synthetic / mlp" in found["more than one dataset/architecture pair"][1]
    group = group_of(*fair_pair())
    group.dense.clear()
    group.retrain_recipes.clear()
    found = verdicts(group)["synthetic / mlp"]
    assert not found["the same dense model and fine-tuning for every method"][0]
    assert "no dense result is stored" in found["the same dense model and fine-tuning for every method"][1]
    assert not found["the recipe stated"][0] and not found["fine-tuning LR and budget stated and equal across methods"][0]


def test_the_text_reads_meets_then_does_not_meet_with_sources() -> None:
    (entry,) = evaluate_guidance(group_of(*fair_pair(seeds=(0,)), seeds=(0,)), ("synthetic / mlp",))
    text = entry.text()
    assert text.startswith("synthetic / mlp: meets ")
    meets, unmet = text.split(" Does not meet: ")
    assert "Meets: It reports both the compression ratio" in meets and "(Blalock et al. 2020)." in meets
    assert "It does not report spread over seeds, because" in unmet and "(Wang et al. 2023)." in unmet
    markdown = guidance_markdown("synthetic / mlp", evaluate_checklist(group_of(*fair_pair())), [entry])
    assert "## Reporting checklist" in markdown and "- PASS: random-pruning control" in markdown
    assert "Does not meet:" in markdown and f"> {text}" in markdown


def test_the_page_shows_the_guidance_beside_the_checklist() -> None:
    group = group_of(*fair_pair(seeds=(0,)), seeds=(0,))
    page = render("r", [Section(group.title, [], [], evaluate_checklist(group), [], evaluate_guidance(group, (group.title,)))], [])
    checklist, guidance = page.index("Reporting checklist"), page.index('<section class="guidance">')
    assert checklist < guidance
    assert "NOT MET: several seeds with their spread — It does not report spread over seeds" in page
    assert '<p class="paste">synthetic / mlp: meets' in page


def sanity_group(shuffle_gap: float, with_reinit: bool = True) -> Group:
    """magnitude, its random control, its layer-shuffle control shuffle_gap below it at every
    level but the first (where masks barely matter), and optionally its reinit control."""
    shuffled = curve("magnitude", 0.95, role="control", control="layer-shuffle")
    for point in list(shuffled.points.values())[1:]:
        point.top1 = {s: v - shuffle_gap for s, v in point.top1.items()}
    curves = [*fair_pair()[:1], fair_pair()[2], shuffled]
    if with_reinit:
        curves.append(curve("magnitude", 0.5, role="control", control="reinit"))
    return group_of(*curves)


def test_the_checklist_asks_for_sanity_controls_and_that_each_is_beaten() -> None:
    checks = {c.name: c for c in evaluate_checklist(sanity_group(0.05))}
    assert checks["layer-shuffle and reinit controls present for every method"].passed
    beaten = checks["every method beats its own layer-shuffle and reinit controls"]
    assert beaten.passed and "beaten: magnitude (retrain.mode=finetune) vs its layer-shuffle: better at 4x, 8x, 16x, 32x of 5" in beaten.detail
    checks = {c.name: c for c in evaluate_checklist(sanity_group(0.0, with_reinit=False))}
    present = checks["layer-shuffle and reinit controls present for every method"]
    assert not present.passed and "missing: reinit of magnitude" in present.detail and "layer-shuffle of" not in present.detail
    beaten = checks["every method beats its own layer-shuffle and reinit controls"]
    assert not beaten.passed and "not beaten: magnitude vs its layer-shuffle: better at no level of 5" in beaten.detail
    plain = {c.name for c in evaluate_checklist(group_of(*fair_pair()))}
    assert "every method beats its own layer-shuffle and reinit controls" not in plain  # nothing to beat


def test_the_checklist_asks_for_trainability_matched_speedups_and_cost() -> None:
    checks = {c.name: c for c in evaluate_checklist(group_of(*fair_pair()))}
    assert checks["trainability after pruning reported"].passed and "all 45 run(s) (exact)" in checks["trainability after pruning reported"].detail
    matched = checks["accuracy compared at matched speedups"]
    assert matched.passed and "theoretical speedup at 2x, 3x, 4x, 8x, 16x;" in matched.detail and "no run measured latency" in matched.detail
    assert checks["cost of pruning reported"].passed
    untraced = {c.name: c for c in evaluate_checklist(group_of(curve("magnitude", 0.95, traced=False)))}
    assert not untraced["trainability after pruning reported"].passed
    assert not untraced["cost of pruning reported"].passed and "15 of 15 run(s) record no cost" in untraced["cost of pruning reported"].detail
    assert not untraced["accuracy compared at matched speedups"].passed  # one curve: nothing to compare with
