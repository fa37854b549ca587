"""The run record: result.json round-trips, old results and databases convert, the report keys a
point by everything but the seed."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.errors import DataError
from prunebench.executors import make_executor
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.record import SCHEMA_VERSION, RunResult, Target, load_result, read_result
from prunebench.report.aggregate import build_groups
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.tables import levels_table, paired_table
from prunebench.store import ResultsDB
from prunebench.store import db as results_db

DATA = Path(__file__).parent / "data"
TINY = {
    "dataset": "digits", "model": "mlp", "threads": 1,
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}


def run(config: dict, results: Path) -> list[dict]:
    plan = plan_from_mapping(config)
    statuses = run_plan(plan, results, make_executor("serial"), live=False)
    assert statuses["completed"] == len(plan.jobs)
    return ResultsDB(results).rows()


def test_legacy_result_json_converts_with_its_target_rederived(caplog: pytest.LogCaptureFixture) -> None:
    old = json.loads((DATA / "legacy-result.json").read_text())
    with caplog.at_level("INFO", logger="prunebench"):
        record = read_result(DATA / "legacy-result.json")
    assert "converting a result without schema_version" in caplog.text
    assert record.schema_version == SCHEMA_VERSION and record.run_id == old["run_id"]
    assert record.sizes.compression_ratio == old["compression_ratio"] and record.accuracy.top1 == old["top1"]
    assert record.accuracy.pre_retrain_top1 == old["pre_finetune_top1"]
    assert record.macs.theoretical_speedup == old["theoretical_speedup"]
    assert record.target == Target(kind="compression", value=4.0)
    # The old file says compression 4 for a round-count run; the record says what the spec set.
    rounds = read_result(DATA / "legacy-result-rounds.json")
    assert json.loads((DATA / "legacy-result-rounds.json").read_text())["target"]["kind"] == "compression"
    assert rounds.target == Target(kind="rounds", value=2) and len(rounds.retraining.rounds) == 2
    assert load_result(rounds.model_dump_json()) == rounds


def test_newer_or_broken_results_are_refused() -> None:
    record = read_result(DATA / "legacy-result.json")
    with pytest.raises(DataError, match="schema_version 99"):
        load_result({**record.model_dump(mode="json"), "schema_version": 99})
    with pytest.raises(DataError, match="invalid run result"):
        load_result({**record.model_dump(mode="json"), "sizes": {}})


def test_the_role_is_the_rows_not_the_results() -> None:
    """A result says what ran, not which plan ran it: an earlier result's role is ignored on read."""
    record = read_result(DATA / "legacy-result.json")
    assert "role" not in RunResult.model_fields and "role" not in record.model_dump()
    assert load_result({**record.model_dump(mode="json"), "role": "control"}) == record


def test_legacy_database_migrates_in_place(tmp_path: Path) -> None:
    shutil.copy(DATA / "legacy-v0.db", tmp_path / "prunebench.db")
    rows = {r["strategy"] + "/" + str(r["target_kind"]) + "/" + str(r["target_value"]): r for r in ResultsDB(tmp_path).rows()}
    assert set(rows) == {
        "dense/None/None", "magnitude/compression/2.0", "magnitude/compression/4.0", "random/compression/2.0",
        "random/compression/4.0", "magnitude/rounds/2", "magnitude/nm/2:4",
    }
    assert all(isinstance(r["result"], RunResult) for r in rows.values())
    assert all("target_compression" not in r for r in rows.values())
    assert rows["random/compression/2.0"]["role"] == "control" and rows["dense/None/None"]["role"] == "dense"
    assert rows["magnitude/nm/2:4"]["structure"] == "2:4" and rows["magnitude/rounds/2"]["schedule"] == "iterative"
    assert len({r["dense_recipe"] for r in rows.values()}) == 1
    again = ResultsDB(tmp_path).rows()  # opened again: already migrated, nothing changes
    assert [r["result"] for r in again] == [r["result"] for r in rows.values()]
    conn = sqlite3.connect(tmp_path / "prunebench.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == results_db.SCHEMA_VERSION == 2
    assert "finetune_id" not in {c[1] for c in conn.execute("PRAGMA table_info(runs)")}  # retrain_recipe is the one id
    assert all("finetune_id" not in r for r in rows.values())


def test_version_1_database_drops_its_second_recipe_id(tmp_path: Path) -> None:
    shutil.copy(DATA / "legacy-v0.db", tmp_path / "prunebench.db")
    with sqlite3.connect(tmp_path / "prunebench.db") as conn:  # what version 1 left: finetune_id kept
        results_db.migrate_v0(conn)
        conn.execute("PRAGMA user_version=1")
    query = "SELECT run_id, kind, retrain_recipe, finetune_id FROM runs ORDER BY rowid"
    before = sqlite3.connect(tmp_path / "prunebench.db").execute(query).fetchall()
    assert all(finetune_id for _, kind, _, finetune_id in before if kind == "pruned")
    rows = ResultsDB(tmp_path).rows()
    assert all("finetune_id" not in r for r in rows)
    assert [(r["run_id"], r["retrain_recipe"]) for r in rows] == [(run_id, recipe) for run_id, _, recipe, _ in before]
    assert sqlite3.connect(tmp_path / "prunebench.db").execute("PRAGMA user_version").fetchone()[0] == 2


def test_results_and_report_read_a_legacy_results_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A results directory written before versions: both commands work through the CLI, unchanged."""
    shutil.copy(DATA / "legacy-v0.db", tmp_path / "prunebench.db")
    assert main(["results", "--results", str(tmp_path), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split(",")
    table = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert len(table) == 7 and {r["status"] for r in table} == {"completed"}
    assert {r["strategy"]: r["role"] for r in table} == {"dense": "dense", "magnitude": "method", "random": "control"}
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "PASS: every strategy fine-tuned with the same recipe" in html
    paired = (tmp_path / "report" / "digits-mlp-paired.csv").read_text()
    assert paired.count("magnitude (") == 2 and paired.count(" - random (") == 2  # method - control at 2x and 4x


def test_lr_and_epoch_sweep_keeps_every_run_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """3 fine-tuning LRs x 2 dense epochs x 2 seeds: each (lr, epochs) is its own point with n = 2."""
    config = {**TINY, "baselines": False,
              "sweep": {"finetune.lr": [0.001, 0.01, 0.1], "train.epochs": [1, 2], "seed": [0, 1]}}
    rows = run(config, tmp_path)
    for row in (r for r in rows if r["kind"] == "pruned"):  # result.json re-validates to the stored record
        assert RunResult.model_validate_json((tmp_path / row["run_id"] / "result.json").read_text()) == row["result"]
    (group,) = build_groups(rows)
    assert len(group.curves) == 6
    for curve in group.curves.values():
        (point,) = curve.points.values()
        assert len(point.top1) == 2  # both seeds, nothing merged across LRs or epochs
        lrs = {json.loads(curve.settings["finetune.lr"])}
        assert len(lrs) == 1
        assert "finetune.lr=" in curve.setting and "train.epochs=" in curve.setting
    pruned = [r for r in rows if r["kind"] == "pruned"]
    assert sum(len(p.top1) for c in group.curves.values() for p in c.points.values()) == len(pruned) == 12
    assert {(json.loads(c.settings["finetune.lr"]), json.loads(c.settings["train.epochs"])) for c in group.curves.values()} \
        == {(lr, e) for lr in (0.001, 0.01, 0.1) for e in (1, 2)}
    # Dense accuracy is filed by the dense spec (epochs differ), not by seed alone.
    assert len(group.dense) == 2 and all(len(d.top1) == 2 for d in group.dense.values())
    assert sum(r[0] == "dense" for r in levels_table(group).rows) == 2
    (recipe_check,) = [c for c in evaluate_checklist(group) if c.name == "every strategy fine-tuned with the same recipe"]
    assert recipe_check.detail.startswith("3 different")  # 3 LRs, epochs are the dense recipe
    assert recipe_check.passed  # every strategy (here: one) ran under each LR, compared recipe by recipe
    assert main(["results", "--results", str(tmp_path), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split(",")
    assert {"target_kind", "target_value", "dense_recipe", "retrain_recipe", "finetune.lr", "train.epochs"} <= set(header)
    table = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert {r["finetune.lr"] for r in table if r["role"] == "method"} == {"0.001", "0.01", "0.1"}
    assert len({r["retrain_recipe"] for r in table if r["role"] == "method"}) == 3
    assert len({r["dense_recipe"] for r in table}) == 2


def test_round_count_and_nm_runs_are_filed_at_the_compression_they_reached(tmp_path: Path) -> None:
    run({**TINY, "baselines": False, "sweep": {"prune.compression": [4], "seed": [0]}}, tmp_path)
    run({**TINY, "baselines": False, "prune": {"schedule": "iterative", "iterative": {"rounds": 2}}}, tmp_path)
    rows = run({**TINY, "baselines": False, "prune": {"structure": "2:4"}}, tmp_path)
    (group,) = build_groups(rows)
    by_kind = {c.target_kind: c for c in group.curves.values()}
    assert set(by_kind) == {"compression", "rounds", "nm"}
    (rounds,) = by_kind["rounds"].points.values()
    (nm,) = by_kind["nm"].points.values()
    assert rounds.target == Target(kind="rounds", value=2) and rounds.level == "2 rounds"
    assert nm.target == Target(kind="nm", value="2:4") and nm.level == "2:4"
    reached = {r["target_kind"]: r["result"].sizes.compression_ratio for r in rows if r["kind"] == "pruned"}
    assert rounds.mean_compression() == reached["rounds"] and 1.4 < reached["rounds"] < 1.7  # 0.8^2 of prunable left
    assert nm.mean_compression() == reached["nm"] and 1.8 < reached["nm"] < 2.0
    assert "target rounds" in by_kind["rounds"].setting and "target nm" in by_kind["nm"].setting
    levels = {row[2]: row for row in levels_table(group).rows}
    assert float(levels["2 rounds"][3]) == pytest.approx(reached["rounds"], abs=0.005)
    assert float(levels["2:4"][3]) == pytest.approx(reached["nm"], abs=0.005)


def test_controls_come_from_the_role_not_the_strategy_name(tmp_path: Path) -> None:
    rows = run({**TINY, "sweep": {"prune.compression": [2, 4]}}, tmp_path)
    db = ResultsDB(tmp_path)
    (group,) = build_groups(db.rows())
    roles = {c.strategy: c.role for c in group.curves.values()}
    assert roles == {"magnitude": "method", "random": "control"}  # old-style rows: the name's fallback
    # A row the sweep marked as the control is one, whatever its strategy is called.
    marked = [{**r, "role": "control" if r["strategy"] == "magnitude" else ("method" if r["kind"] == "pruned" else "dense")}
              for r in rows]
    (group,) = build_groups(marked)
    assert {c.strategy: c.role for c in group.curves.values()} == {"magnitude": "control", "random": "method"}


def test_a_channel_sweeps_control_is_its_random_channel_run(tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    config = {
        "dataset": "synthetic", "model": "conv-2", "threads": 1,
        "train": {"epochs": 1, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64},
        "prune": {"structure": "channel", "strategy": "l1_filter"}, "sweep": {"prune.speedup": [1.5, 2.0]},
    }
    rows = run(config, tmp_path)
    assert {r["strategy"]: r["role"] for r in rows} == {"dense": "dense", "l1_filter": "method", "random_channel": "control"}
    (group,) = build_groups(rows)
    assert {c.strategy: c.role for c in group.curves.values()} == {"l1_filter": "method", "random_channel": "control"}
    checks = {c.name: c for c in evaluate_checklist(group)}
    assert checks["random-pruning control at every level of every strategy"].passed
    assert checks["every strategy fine-tuned with the same recipe"].passed
    paired = paired_table(group).rows
    assert [(row[0].split(" (")[0], row[0].split(" - ")[1].split(" (")[0], row[1]) for row in paired] == [
        ("l1_filter", "random_channel", "speedup 1.5x"), ("l1_filter", "random_channel", "speedup 2x"),
    ]
    # Without the sweep's marks the name decides (rows from before roles) and gives the same answer.
    (unmarked,) = build_groups([{**r, "role": None} for r in rows])
    assert {c.strategy: c.role for c in unmarked.curves.values()} == {"l1_filter": "method", "random_channel": "control"}
