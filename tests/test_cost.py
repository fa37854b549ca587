"""What pruning costs: typed wall time and peak memory per run, and the report's cost table."""

import time
from pathlib import Path

import torch

from prunebench.executors import make_executor
from prunebench.metrics.cost import PeakMemory
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.report.aggregate import build_groups
from prunebench.report.tables import cost_table
from prunebench.store import ResultsDB


def test_peak_memory_sees_a_step_that_allocates_64_mb() -> None:
    with PeakMemory("cpu") as peak:
        block = torch.ones(16 * 2**20)  # 64 MB of float32, touched
        time.sleep(0.02)  # held long enough for the 1 ms sampler
        del block
    assert peak.method == "rss-sampled-1ms" and peak.mb > 48
    with PeakMemory("cpu") as idle:
        pass
    assert idle.mb < 48


def test_every_run_records_its_cost_and_the_report_tables_it_per_method(tmp_path: Path) -> None:
    config = {"dataset": "synthetic", "model": "mlp", "threads": 1,
              "train": {"epochs": 1, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64},
              "sweep": {"prune.strategy": ["magnitude", "snip"], "prune.compression": [2, 4]}}
    run_plan(plan_from_mapping(config), tmp_path, make_executor("serial"), live=False)
    rows = [r for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"]
    for row in rows:
        result = row["result"]
        assert result.cost is not None and result.cost.peak_method == "rss-sampled-1ms"
        assert result.cost.prune_s == result.timings.prune > 0 and result.cost.retrain_s == result.timings.retrain > 0
        assert result.cost.prune_peak_mb >= 0
    (group,) = build_groups(ResultsDB(tmp_path).rows())
    table = cost_table(group)
    assert [row[0] for row in table.rows] == ["magnitude", "snip", "random"]
    assert all(row[2] == "2" for row in table.rows)  # two levels, one seed
    snip = next(r["result"].cost.prune_s for r in rows if r["strategy"] == "snip" and r["result"].target.value == 2.0)
    snip_other = next(r["result"].cost.prune_s for r in rows if r["strategy"] == "snip" and r["result"].target.value == 4.0)
    assert float(table.rows[1][4]) == float(f"{max(snip, snip_other):.3g}")
