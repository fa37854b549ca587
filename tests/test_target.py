"""One Target: the spec, result.json, the database, ``prunebench results`` and the report agree."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from prunebench.cli import main
from prunebench.spec import SPEC_VERSION, build_specs
from prunebench.executors import make_executor
from prunebench.plan.runner import row_for, run_plan
from prunebench.plan.sweep import Job, plan_from_mapping
from prunebench.record import RunResult, index_of, read_result
from prunebench.report.aggregate import build_groups
from prunebench.store import ResultsDB
from prunebench.store.layout import run_folder
from prunebench.target import Target

DIGITS: dict[str, Any] = {"dataset": "digits", "model": "mlp"}
LM: dict[str, Any] = {"dataset": "shakespeare", "model": "smollm2-135m", "prune": {"strategy": "wanda", "scope": "row"}}
CASES: dict[str, tuple[dict[str, Any], Target]] = {
    "2:4": ({**DIGITS, "prune": {"structure": "2:4"}}, Target(kind="nm", value="2:4")),
    "4:8": ({**DIGITS, "prune": {"structure": "4:8"}}, Target(kind="nm", value="4:8")),
    "compression": ({**DIGITS, "prune": {"compression": 8}}, Target(kind="compression", value=8.0)),
    "default": (DIGITS, Target(kind="compression", value=4.0)),
    "speedup": ({**DIGITS, "prune": {"strategy": "l1_filter", "structure": "channel", "speedup": 2}},
                Target(kind="speedup", value=2.0)),
    "channel_fraction": ({**DIGITS, "prune": {"strategy": "l1_filter", "structure": "channel", "channel_fraction": 0.25}},
                         Target(kind="channel_fraction", value=0.25)),
    "rounds": ({**DIGITS, "prune": {"schedule": "iterative", "iterative": {"rounds": 2}}}, Target(kind="rounds", value=2)),
    "lm sparsity": ({**LM, "prune": {**LM["prune"], "sparsity": 0.6}}, Target(kind="sparsity", value=0.6)),
    "lm default": (LM, Target(kind="sparsity", value=0.5)),
    "lm 2:4": ({**LM, "prune": {**LM["prune"], "structure": "2:4"}}, Target(kind="nm", value="2:4")),
}


@pytest.mark.parametrize("case", CASES)
def test_a_spec_gives_one_target_everywhere(case: str, tmp_path: Path) -> None:
    config, expected = CASES[case]
    spec = build_specs(config)[0]
    assert spec.prune.target == spec.target == expected
    recorded = spec.recorded()
    assert Target.from_prune(recorded["prune"]) == expected  # what result.json's spec says
    assert build_specs(recorded)[0].target == expected  # the recorded spec validates back to it
    index = index_of(recorded)
    assert (index["target_kind"], index["target_value"]) == (expected.kind, expected.value)
    db = ResultsDB(tmp_path)
    job = Job("pruned", spec)
    db.register(row_for(job))
    (row,) = db.rows()
    assert (row["target_kind"], row["target_value"]) == (expected.kind, expected.value)
    assert expected.label() in job.describe()


def test_an_nm_run_is_nm_in_result_json_the_database_the_table_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = {
        **DIGITS, "threads": 1, "baselines": False,
        "train": {"epochs": 1, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64},
        "sweep": [{"prune.structure": ["2:4", "4:8"]}, {"prune.compression": [8]}],
    }
    plan = plan_from_mapping(config)
    assert run_plan(plan, tmp_path, make_executor("serial"), live=False)["completed"] == len(plan.jobs) == 4
    expected = {job.spec.run_id: job.spec.target for job in plan.jobs if job.kind == "pruned"}
    assert sorted(t.label() for t in expected.values()) == ["2:4", "4:8", "8x"]
    rows = [r for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"]
    for row in rows:
        target = expected[row["run_id"]]
        stored: RunResult = read_result(run_folder(tmp_path, row["run_id"]) / "result.json")
        assert stored.target == row["result"].target == target
        assert stored.spec_version == SPEC_VERSION  # how a result says which hashing rules made its id
        assert (row["target_kind"], row["target_value"]) == (target.kind, target.value)
    assert main(["results", "--results", str(tmp_path), "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    shown = {r["run_id"]: (r["target_kind"], r["target_value"]) for r in table if r["role"] == "method"}
    assert shown == {run_id: (t.kind, str(t.value)) for run_id, t in expected.items()}
    (group,) = build_groups(ResultsDB(tmp_path).rows())
    points = [p for c in group.curves.values() for p in c.points.values()]
    assert sorted((p.target.kind, p.level) for p in points) == [("compression", "8x"), ("nm", "2:4"), ("nm", "4:8")]
