"""Recipe axes, ranking flips between recipes, and accuracy at matched speedups."""

import json
import math
from pathlib import Path

import pytest

from prunebench.executors import make_executor
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.record import Target
from prunebench.report import write_report
from prunebench.report.aggregate import Curve, Group, Point, build_groups, label_curves
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.matched import interpolate_at, matched, matched_table
from prunebench.report.recipes import rank_flips, recipe_tables
from prunebench.store import ResultsDB

BASE = {
    "dataset": "synthetic", "model": "mlp", "threads": 1,
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}, "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}


def test_the_rank_flip_detector_flags_a_known_flip_and_not_a_stable_ranking() -> None:
    # Under 'lr=0.01' a beats b by ~5 points on every seed; under 'lr=0.001' b beats a by ~3.
    flipped = {
        "lr=0.01": {"a": {0: 0.90, 1: 0.91, 2: 0.92}, "b": {0: 0.85, 1: 0.86, 2: 0.865}},
        "lr=0.001": {"a": {0: 0.80, 1: 0.81, 2: 0.80}, "b": {0: 0.83, 1: 0.84, 2: 0.835}},
    }
    (flip,) = rank_flips(flipped)
    assert (flip.a, flip.b, flip.first, flip.second) == ("a", "b", "lr=0.01", "lr=0.001")
    assert flip.significant and flip.first_diff.mean > 0 > flip.second_diff.mean
    assert flip.interaction is not None and flip.interaction.mean == pytest.approx(
        sum((flipped["lr=0.01"]["a"][s] - flipped["lr=0.01"]["b"][s]) - (flipped["lr=0.001"]["a"][s] - flipped["lr=0.001"]["b"][s])
            for s in range(3)) / 3)
    stable = {recipe: {"a": methods["a"], "b": {s: v - 0.1 for s, v in methods["a"].items()}} for recipe, methods in flipped.items()}
    assert rank_flips(stable) == []
    noisy = {"r1": {"a": {0: 0.9, 1: 0.7}, "b": {0: 0.8, 1: 0.79}}, "r2": {"a": {0: 0.7, 1: 0.9}, "b": {0: 0.82, 1: 0.81}}}
    (flip,) = rank_flips(noisy)
    assert not flip.significant  # the order changes, but neither difference is distinguishable from 0


def test_interpolation_returns_known_values_on_constructed_curves() -> None:
    # top-1 linear in log2(speedup): 0.9 at 1x, 0.7 at 4x -> 0.8 at 2x, 0.75 at sqrt(8)x.
    assert interpolate_at([1.0, 4.0], [0.9, 0.7], [2.0, 8 ** 0.5]) == pytest.approx([0.8, 0.75])
    assert interpolate_at([4.0, 1.0, 2.0], [0.7, 0.9, 0.85], [2.0, 3.0]) == pytest.approx([0.85, 0.85 - 0.15 * math.log2(1.5)])
    outside = interpolate_at([1.5, 4.0], [0.9, 0.7], [1.2, 5.0])
    assert all(math.isnan(v) for v in outside)  # never extrapolated


def test_matched_speedup_carries_the_seed_spread_into_the_interval() -> None:
    curve = Curve("magnitude", "method", {"target.kind": '"compression"', "prune.scope": '"global"'}, None)
    for level, by_seed in ((2.0, {0: (1.5, 0.9), 1: (1.5, 0.8)}), (8.0, {0: (6.0, 0.7), 1: (6.0, 0.6)})):
        point = Point(Target(kind="compression", value=level))
        for seed, (speedup, top1) in by_seed.items():
            point.speedup[seed], point.top1[seed], point.compression[seed] = speedup, top1, level
        curve.points[json.dumps(level)] = point
    (at3,) = matched(curve, [3.0], measured=False)
    assert at3 is not None and at3.n == 2 and at3.mean == pytest.approx(0.75)  # halfway in log2 from 1.5x to 6x
    assert at3.ci_low < 0.75 < at3.ci_high
    group = Group("synthetic", "mlp")
    group.curves[()] = curve
    label_curves(group)
    table = matched_table(group, measured=False, targets=(3.0, 8.0))
    assert table.header[-1] == "3x" and table.rows[0][2].startswith("75.00 [")  # clipped at 100; 8x: reached by no seed, no column


def test_finetune_recipe_keys_are_sweepable_axes() -> None:
    plan = plan_from_mapping({**BASE, "sweep": {"finetune.lr": [0.01, 0.001], "finetune.epochs": [1, 3],
                                                "finetune.lr_schedule": ["constant", "cosine"]}})
    methods = [j.spec for j in plan.pruned_jobs if j.role == "method"]
    assert len({s.run_id for s in methods}) == 8
    assert {(s.finetune.lr, s.finetune.epochs, s.finetune.lr_schedule) for s in methods} == {
        (lr, e, sch) for lr in (0.01, 0.001) for e in (1, 3) for sch in ("constant", "cosine")}
    assert len(plan.dense_jobs) == 1  # the recipe of fine-tuning does not touch the dense model


@pytest.mark.slow  # runs a sweep over recipes
def test_a_recipe_sweep_is_ranked_per_recipe_and_checked_for_flips(tmp_path: Path) -> None:
    config = {**BASE, "sweep": {"prune.strategy": ["magnitude", "grad_magnitude"], "finetune.lr": [0.001, 0.05],
                                "prune.compression": [4, 16], "seed": [0, 1]}}
    run_plan(plan_from_mapping(config), tmp_path, make_executor("serial"), live=False)
    (group,) = build_groups(ResultsDB(tmp_path).rows())
    tables, flips = recipe_tables(group)
    ranking, flip_table = tables
    assert ranking.header == ["method", "finetune.lr=0.001", "finetune.lr=0.05"]
    assert {row[0] for row in ranking.rows} == {"magnitude", "grad_magnitude", "random"}
    assert all(cell.startswith("#") for row in ranking.rows for cell in row[1:])
    assert len(flip_table.rows) == max(1, len(flips)) and (flips or flip_table.rows[0][0].startswith("none"))
    checks = {c.name: c for c in evaluate_checklist(group)}
    assert checks["every strategy fine-tuned with the same recipe"].passed  # each strategy ran under both
    assert "ranking stable across fine-tuning recipes" in checks
    html = write_report(tmp_path, tmp_path / "report").read_text()
    assert "ranking per fine-tuning recipe" in html and "ranking flips between fine-tuning recipes" in html
    assert "matched theoretical speedup" in html and "ranking stable across fine-tuning recipes" in html


def test_a_strategy_missing_under_one_recipe_violates_the_same_recipe_rule() -> None:
    group = Group("synthetic", "mlp")
    for strategy, lr in (("magnitude", 0.01), ("magnitude", 0.001), ("snip", 0.01)):
        settings = {"prune.strategy": json.dumps(strategy), "finetune.lr": json.dumps(lr), "target.kind": '"compression"'}
        curve = Curve(strategy, "method", settings, f"recipe-{lr}")
        point = Point(Target(kind="compression", value=4.0))
        point.top1, point.compression, point.speedup = {0: 0.9}, {0: 4.0}, {0: 3.9}
        curve.points["4.0"] = point
        group.curves[tuple(sorted(settings.items()))] = curve
    label_curves(group)
    checks = {c.name: c for c in evaluate_checklist(group)}
    same = checks["every strategy fine-tuned with the same recipe"]
    assert not same.passed and "snip missing under finetune.lr=0.001" in same.detail
