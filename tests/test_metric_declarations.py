"""Each metric is declared once (prunebench.metrics.declared) and the declaration is true: its
place in the record exists, the docs' table is its output, the code it names exists, and the
results table and the report's verdicts read it."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from prunebench.errors import UnknownNameError
from prunebench.metrics.declared import BEGIN, DECLARED, END, METRICS, PERPLEXITY, TOP1, Metric, docs_table
from prunebench.record import RunResult, load_result
from prunebench.report.lm import paired_verdict
from prunebench.report.results import COLUMNS, METRIC_COLUMNS, metrics
from prunebench.report.tables import judged

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "metrics.md"
LEGACY = ROOT / "tests" / "data" / "legacy-result.json"


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The record classes an annotation can hold (``Accuracy | None`` -> [Accuracy])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]
    return []


def field_at(path: str) -> Any:
    """The annotation of the record field at a dotted path; fails naming the first missing part."""
    model: type[BaseModel] = RunResult
    annotation: Any = None
    for depth, part in enumerate(path.split(".")):
        assert part in model.model_fields, f"{path}: {model.__name__} has no field {part!r}"
        annotation = model.model_fields[part].annotation
        if depth < len(path.split(".")) - 1:
            (model,) = models_in(annotation)
    return annotation


@pytest.mark.parametrize("metric", DECLARED, ids=[m.name for m in DECLARED])
def test_every_declared_place_is_a_field_of_the_record(metric: Metric) -> None:
    assert field_at(metric.path) is not None


def test_a_wrong_place_is_found() -> None:
    with pytest.raises(AssertionError, match="Accuracy has no field 'top_1'"):
        field_at("accuracy.top_1")


def legacy() -> RunResult:
    return load_result(LEGACY.read_text())


def test_a_metric_reads_the_same_value_from_a_result_and_from_its_json() -> None:
    result = legacy()
    as_json = result.model_dump(mode="json")
    for metric in DECLARED:
        assert metric.read(result) == metric.read(as_json), metric.name
    assert TOP1.read(result) == result.accuracy.top1 and 0 < TOP1.read(as_json) <= 1  # type: ignore[union-attr]
    assert PERPLEXITY.read(as_json) is None  # a classifier has none: absent, not an error
    assert METRICS.get("measured_speedup").read(as_json) is None  # no latency section at all


def test_names_and_anchors_are_unique_and_lookups_name_close_matches() -> None:
    assert len({m.anchor for m in DECLARED}) == len(DECLARED) == len(METRICS)
    assert [m.name for m in DECLARED] == [METRICS.get(m.name).name for m in DECLARED]
    with pytest.raises(UnknownNameError, match="did you mean top1"):
        METRICS.get("top_1")


def test_docs_table_is_the_declarations_output() -> None:
    text = DOCS.read_text()
    assert docs_table() in text, "docs/metrics.md: run `python -m prunebench.metrics.declared` and paste its output"
    assert text.count(BEGIN) == text.count(END) == 1
    anchors = re.findall(r'<a id="([^"]+)"></a>', text)
    assert anchors == [m.anchor for m in DECLARED]


def test_the_docs_check_catches_a_drifted_definition() -> None:
    first = DECLARED[0]
    drifted = Metric(first.name, first.label, first.unit, first.path, first.direction, "something else", first.code)
    assert docs_table((drifted, *DECLARED[1:])) not in DOCS.read_text()
    assert docs_table(DECLARED[1:]) not in DOCS.read_text()  # a metric missing from the docs


@pytest.mark.parametrize("metric", DECLARED, ids=[m.name for m in DECLARED])
def test_the_code_named_for_each_metric_exists(metric: Metric) -> None:
    assert (ROOT / "src" / "prunebench" / metric.code).is_file(), metric.code


def test_results_columns_are_declared_metrics_read_from_their_place() -> None:
    assert set(METRIC_COLUMNS) <= set(METRICS) and set(METRIC_COLUMNS) <= set(COLUMNS)
    result = legacy()
    values = metrics(result)
    assert list(values) == list(METRIC_COLUMNS)
    assert values["compression_ratio"] == result.sizes.compression_ratio
    assert values["wall_time_s"] == result.timings.wall
    assert values["top1"] == result.accuracy.top1  # type: ignore[union-attr]


def test_headers_carry_the_shown_unit() -> None:
    assert TOP1.header("mean") == "top-1 mean (%)"
    assert METRICS.get("compression_ratio").header() == "compression"  # a ratio is shown bare
    assert METRICS.get("prune_peak_mb").shown_unit == "MB"


def test_the_direction_decides_better_and_worse() -> None:
    assert TOP1.better(0.1) and not TOP1.better(-0.1) and TOP1.worse(-0.1) and not TOP1.worse(0.0)
    assert PERPLEXITY.better(-1.0) and PERPLEXITY.worse(1.0)
    assert sorted([1.0, 3.0, 2.0], key=TOP1.best_first) == [3.0, 2.0, 1.0]
    assert sorted([1.0, 3.0, 2.0], key=PERPLEXITY.best_first) == [1.0, 2.0, 3.0]
    assert TOP1.surely_better(0.1, 0.3) and not TOP1.surely_better(-0.1, 0.3)
    assert PERPLEXITY.surely_better(-0.3, -0.1) and not PERPLEXITY.surely_better(-0.3, 0.1)
    with pytest.raises(ValueError, match="no better direction"):
        METRICS.get("params_total").better(1.0)


def test_verdicts_are_worded_by_the_metrics_direction() -> None:
    assert judged("a > b", "method better", "control better") == "method better"
    assert judged("a < b", "method better", "control better") == "control better"
    assert paired_verdict(0.001, 0.5, 5) == "a worse"  # a higher log perplexity than b's
    assert paired_verdict(0.001, -0.5, 5) == "a better"
    assert paired_verdict(0.5, -0.5, 5) == "no significant difference (n = 5)"



def test_the_results_docs_name_every_metric_column() -> None:
    text = " ".join((ROOT / "docs" / "sweeps.md").read_text().split())
    paragraph = text.split("One row per run: ", 1)[1].split("(e.g. `finetune.lr`)", 1)[0]
    listed = set(re.findall(r"[a-z0-9_]+", paragraph))
    assert set(METRIC_COLUMNS) <= listed, sorted(set(METRIC_COLUMNS) - listed)
