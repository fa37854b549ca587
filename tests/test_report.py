"""The report's reading aids: Holm-corrected verdicts, a wide table, one colour per strategy,
ticks at the levels run, per-layer density, recipe and provenance."""

import json

import matplotlib
import pytest

from prunebench.record import Target
from prunebench.report.aggregate import Curve, Dense, Group, Point, label_curves
from prunebench.report.plots import (
    curve_styles,
    dense_by_seed,
    density_level,
    drop_figure,
    level_ticks,
    plt,
    tick_values,
)
from prunebench.report.stats import estimate, holm, paired_test
from prunebench.report.tables import paired_table, provenance_table, wide_table

LEVELS = (2, 4, 8, 16, 24)


def curve(strategy: str, scope: str, top1: dict[int, list[float]], role: str = "method") -> Curve:
    settings = {"prune.strategy": json.dumps(strategy), "prune.scope": json.dumps(scope), "target.kind": '"compression"'}
    c = Curve(strategy, role, settings, "r1")  # type: ignore[arg-type]
    c.control = "random" if role == "control" else None
    for level, values in top1.items():
        point = Point(Target(kind="compression", value=float(level)))
        for seed, value in enumerate(values):
            point.top1[seed] = value
            point.compression[seed] = float(level)
            point.speedup[seed] = float(level) * 0.9
            point.layer_density[seed] = {"fc1.weight": 1 / level, "fc2.weight": 2 / level}
        c.points[json.dumps(float(level))] = point
    return c


def group_of(*curves: Curve) -> Group:
    group = Group("synthetic", "mlp")
    for c in curves:
        group.curves[tuple(sorted(c.settings.items()))] = c
    group.dense[()] = Dense({}, {0: 0.99, 1: 0.99, 2: 0.99})
    label_curves(group)
    return group


def test_holm_matches_the_textbook_step_down() -> None:
    # p = 0.01, 0.04, 0.03 (m = 3): 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; max(0.06, 1 * 0.04) = 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.5, float("nan"), 0.2])
    assert adjusted[0] == pytest.approx(0.5) and adjusted[2] == pytest.approx(0.4) and adjusted[1] != adjusted[1]


def test_paired_test_is_the_one_sample_t_test_of_the_differences() -> None:
    from scipy import stats

    a, b = {0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.7, 1: 0.75, 2: 0.6}
    test = paired_test(a, b)
    assert test is not None and test.difference.n == 3
    assert test.p == pytest.approx(stats.ttest_rel([0.9, 0.8, 0.85], [0.7, 0.75, 0.6]).pvalue)


def test_a_nonsignificant_difference_is_worded_with_its_seed_count_and_holm_decides() -> None:
    # One clear difference at 24x, noise elsewhere; one family of 5 levels.
    clear = curve("magnitude", "global", {lv: [0.9, 0.91, 0.905] if lv == 24 else [0.9, 0.8, 0.85] for lv in LEVELS})
    control = curve("random", "global", {lv: [0.5, 0.5, 0.51] if lv == 24 else [0.85, 0.9, 0.8] for lv in LEVELS}, "control")
    table = paired_table(group_of(clear, control))
    verdicts = {row[1]: row[-1] for row in table.rows}
    assert verdicts["24x"] == "a > b"
    assert verdicts["2x"] == "no significant difference (n = 3)"
    assert "Holm" in table.header[-1] and [row[1] for row in table.rows] == [f"{lv}x" for lv in LEVELS]
    raw, adjusted = float(table.rows[0][5]), float(table.rows[0][6])
    assert adjusted >= raw


def noisy(seed: int) -> list[float]:
    """Three seeds' top-1 around 0.8, different per curve and level: no real difference."""
    return [0.8 + 0.03 * ((seed * 7 + k * 3) % 5 - 2) for k in range(3)]


def demo_like() -> Group:
    """Three methods and the random control at five levels, three seeds; magnitude clearly beats
    random at 16x (paired p about 0.005), everything else is noise."""
    random = {lv: noisy(i) for i, lv in enumerate(LEVELS)}
    random[16] = [0.40, 0.45, 0.50]
    magnitude = {lv: noisy(i + 1) for i, lv in enumerate(LEVELS)}
    magnitude[16] = [0.75, 0.85, 0.95]
    return group_of(
        curve("magnitude", "global", magnitude), curve("grad_magnitude", "global", {lv: noisy(i + 2) for i, lv in enumerate(LEVELS)}),
        curve("act_magnitude", "global", {lv: noisy(i + 3) for i, lv in enumerate(LEVELS)}), curve("random", "global", random, "control"),
    )


def test_planned_family_finds_what_holm_over_every_pair_hides() -> None:
    group = demo_like()
    planned, everything = paired_table(group), paired_table(group, exploratory=True)
    row = next(r for r in planned.rows if r[0] == "magnitude - random" and r[1] == "16x")
    old = next(r for r in everything.rows if r[0] == "magnitude - random" and r[1] == "16x")
    assert row[5] == old[5] and float(row[5]) < 0.01  # the same test, the same raw p
    assert old[-1] == "no significant difference (n = 3)"  # Holm over all 30 tests of 6 pairs
    assert row[-1] == "a > b"  # Holm over the 5 levels of magnitude - random
    assert len(everything.rows) == 30 and "exploratory" in everything.title
    # the family: each method against random and against magnitude; never two challengers
    pairs = {r[0] for r in planned.rows}
    assert pairs == {"magnitude - random", "grad_magnitude - random", "act_magnitude - random",
                     "grad_magnitude - magnitude", "act_magnitude - magnitude"}
    assert "each method against the random control and against magnitude" in planned.title


def test_accuracy_intervals_stay_between_0_and_100() -> None:
    low = curve("magnitude", "global", {2: [0.02, 0.3, 0.01], 4: [0.99, 0.9, 1.0]})
    e2, e4 = (low.points[json.dumps(float(lv))].top1_estimate() for lv in (2, 4))
    assert e2.ci_low == 0.0 and e2.ci_high > e2.mean and e4.ci_high == 1.0
    unclipped = estimate([0.02, 0.3, 0.01])
    assert unclipped.ci_low < 0 and e2.ci_high == unclipped.ci_high  # only the impossible part is cut
    cells = wide_table(group_of(low)).rows[1]
    assert cells[2] == f"11.00 [0.00, {unclipped.ci_high * 100:.2f}]"  # uneven: shown as an interval


def test_wide_table_is_strategies_by_levels() -> None:
    group = group_of(curve("magnitude", "global", {lv: [0.9, 0.91] for lv in LEVELS}),
                     curve("magnitude", "layer", {lv: [0.8, 0.8] for lv in LEVELS[:3]}))
    table = wide_table(group)
    assert table.header == ["strategy", "setting", "2x", "4x", "8x", "16x", "24x"]
    rows = {row[1]: row for row in table.rows}
    assert rows["prune.scope=global"][2].startswith("90.50 ± ") and rows["prune.scope=layer"][-1] == ""
    assert "n = 2 seeds" in table.title


def test_variants_of_one_strategy_share_a_colour_and_differ_in_line_style() -> None:
    group = group_of(curve("magnitude", "global", {2: [0.9]}), curve("magnitude", "layer", {2: [0.9]}),
                     curve("snip", "global", {2: [0.9]}), curve("random", "global", {2: [0.9]}, "control"))
    styles = {c.strategy + "/" + c.scope: curve_styles(group)[c.label] for c in group.curves.values()}
    assert styles["magnitude/global"].color == styles["magnitude/layer"].color != styles["snip/global"].color
    assert styles["magnitude/global"].linestyle == "-" and styles["magnitude/layer"].linestyle == "--"
    assert styles["random/global"].color not in {styles["magnitude/global"].color, styles["snip/global"].color}


def test_ticks_sit_at_the_levels_run_and_read_16x() -> None:
    figure, ax = plt.subplots()
    ax.plot([2, 24], [0, 1])
    ax.set_xscale("log", base=2)
    level_ticks(ax, [2.0, 4.0, 8.0, 16.0, 24.0])
    figure.canvas.draw()
    assert list(ax.get_xticks()) == [2, 4, 8, 16, 24]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2x", "4x", "8x", "16x", "24x"]
    plt.close(figure)
    assert matplotlib.get_backend().lower() == "agg"


def test_density_level_prefers_the_level_asked_for_else_nearest_16x() -> None:
    group = group_of(curve("magnitude", "global", {lv: [0.9] for lv in LEVELS}))
    assert density_level(group) == json.dumps(16.0)
    assert density_level(group, 4) == json.dumps(4.0)
    assert density_level(group, 3) == json.dumps(16.0)  # not run: the default


def test_provenance_names_recipes_versions_and_dense_size() -> None:
    group = group_of(curve("magnitude", "global", {2: [0.9]}))
    group.params_total, group.prunable_total, group.macs_dense = 266_610, 266_200, 266_200
    group.retrain_recipes["abc"] = {"mode": "finetune", "epochs": 3, "lr": 0.01, "lr_schedule": "cosine", "batch_size": 128}
    group.versions.add((("prunebench", "0.1.0"), ("torch", "2.5")))
    rows = dict(provenance_table(group).rows)
    assert rows["dense parameters"] == "266,610 (266,200 prunable)"
    assert rows["dense MACs per example"].startswith("266,200")
    assert rows["retraining recipe abc"] == "mode finetune, epochs 3, lr 0.01, lr_schedule cosine, batch_size 128"
    assert rows["software and device"] == "prunebench 0.1.0, torch 2.5"


def test_reached_speedups_get_round_ticks() -> None:
    group = group_of(curve("magnitude", "global", {lv: [0.9, 0.9] for lv in (2, 4, 8)}))
    for c in group.curves.values():  # reached speedups like 2.02x, 4.1x, 8.46x
        for p, reached in zip(c.ordered(), (2.02, 4.1, 8.46)):
            p.speedup = {s: reached for s in p.speedup}
    assert tick_values(group, "speedup") == [2.0, 4.0, 8.0]
    assert tick_values(group, "compression") == [2.0, 4.0, 8.0]  # the targets themselves


def test_the_drop_view_draws_every_seed_against_its_own_dense() -> None:
    method = curve("magnitude", "global", {2: [0.98, 0.97, 0.96], 8: [0.9, 0.8, 0.85]})
    group = group_of(method)
    group.dense[()] = Dense({}, {0: 0.99, 1: 0.98, 2: 0.97})
    assert dense_by_seed(group, method) == {0: 0.99, 1: 0.98, 2: 0.97}
    png = drop_figure(group)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_a_sanity_control_the_sweep_did_not_ask_for_is_not_a_violation() -> None:
    from prunebench.report.checklist import sanity_checks
    from prunebench.report.page import checklist_html

    group = group_of(curve("magnitude", "global", {lv: [0.9, 0.91, 0.92] for lv in LEVELS}),
                     curve("random", "global", {lv: [0.5, 0.5, 0.52] for lv in LEVELS}, "control"))
    (check,) = sanity_checks(group)
    assert check.absent and check.state == "NOT RUN" and "controls: [random, layer-shuffle, reinit]" in check.detail
    html = checklist_html([check])
    assert 'class="absent">NOT RUN' in html and "VIOLATED" not in html


def test_point_labels_never_overlap_and_isolated_points_keep_theirs() -> None:
    import matplotlib.pyplot as plt

    from prunebench.report.plots import label_without_overlap

    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    bunched = [(1.0 + 0.001 * i, 97.0 + 0.01 * i, f"{2 ** i}x") for i in range(6)]  # curves crossing near one spot
    apart = [(0.01, 20.0, "24x"), (0.1, 60.0, "16x")]
    ax.plot([x for x, _, _ in bunched + apart], [y for _, y, _ in bunched + apart], "o")
    ax.set_xscale("log")
    label_without_overlap(figure, ax, bunched + apart)
    renderer = figure.canvas.get_renderer()
    texts = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    plt.close(figure)
    assert {"24x", "16x"} <= set(texts)  # a label with room keeps it
    assert 1 <= len(set(texts) & {label for _, _, label in bunched}) < len(bunched)
    boxes = list(texts.values())
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
