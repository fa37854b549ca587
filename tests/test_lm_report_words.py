"""The language-model report speaks of perplexity and measured speed: no classifier header, no
speedup claimed without a timing, readable perplexities, N:M points at their true sparsity."""

from __future__ import annotations

import json

from prunebench.record import Target
from prunebench.report import DEFINITIONS
from prunebench.report.aggregate import Curve, Dense, Group, Point, label_curves
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.lm import (
    LM_DEFINITIONS,
    NO_SPEEDUP,
    levels_table,
    number,
    perplexity_figure,
)


def lm_group(timed: bool) -> Group:
    group = Group("shakespeare", "smollm2-135m")
    for strategy, kind, values in (("wanda", "sparsity", (0.5, 0.7)), ("sparsegpt", "nm", ("2:4", "4:8"))):
        settings = {"prune.strategy": json.dumps(strategy), "prune.scope": '"row"', "target.kind": json.dumps(kind)}
        curve = Curve(strategy, "method", settings, "r")
        for value in values:
            point = Point(Target(kind=kind, value=value))
            for seed in (0, 1):
                point.perplexity[seed] = point.pre_perplexity[seed] = 30.0 + seed if value != 0.7 else 4.4e8
                point.sparsity[seed] = 0.5 if kind == "nm" else float(value)
                point.compression[seed], point.speedup[seed] = 1.9, 1.66
                if timed:
                    point.measured_speedup[seed] = 1.05
            curve.points[json.dumps(value)] = point
        group.curves[tuple(sorted(settings.items()))] = curve
    group.dense[()] = Dense({}, {}, perplexity={0: 20.0, 1: 20.0})
    label_curves(group)
    return group


def test_perplexities_read_as_numbers_a_reader_compares() -> None:
    assert number(23.4567) == "23.46" and number(4.4e8) == "4.4e+08"


def test_no_speedup_is_claimed_without_a_timing() -> None:
    group = lm_group(timed=False)
    table = levels_table(group)
    column = table.header.index("measured speedup")
    assert all(row[column] == NO_SPEEDUP for row in table.rows if row[0] != "dense")
    assert "MAC ratio (not a speedup)" in table.header
    checks = {c.name: c for c in evaluate_checklist(group)}
    assert "compression ratio and theoretical speedup both reported" not in checks
    speed = checks["measured speedup reported"]
    assert speed.absent and speed.state == "NOT RUN" and NO_SPEEDUP in speed.detail
    timed = lm_group(timed=True)
    assert {c.name: c for c in evaluate_checklist(timed)}["measured speedup reported"].passed
    assert all(row[column] == "1.05" for row in levels_table(timed).rows if row[0] != "dense")


def test_the_definitions_speak_of_perplexity_and_tokens() -> None:
    assert "tokens" in LM_DEFINITIONS and "perplexity" in LM_DEFINITIONS and "Top-1" not in LM_DEFINITIONS
    assert "Top-1" in DEFINITIONS


def test_nm_points_are_drawn_at_their_true_sparsity(monkeypatch: object) -> None:
    from prunebench.report import lm

    drawn: list[list[float]] = []
    real = lm.plt.Axes.errorbar

    def record(self: object, x: object, *args: object, **kwargs: object) -> object:
        drawn.append([float(v) for v in x])  # type: ignore[union-attr]
        return real(self, x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lm.plt.Axes, "errorbar", record)  # type: ignore[attr-defined]
    assert perplexity_figure(lm_group(timed=False)).startswith(b"\x89PNG")
    assert [50.0, 50.0] in drawn  # 2:4 and 4:8 both at 50%, not 50.8% and 51.6%
