"""What pruning costs: typed wall time and peak memory per run, and the report's cost table."""

import subprocess
import sys
import textwrap
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
        deadline = time.monotonic() + 10  # held until the sampler thread has run (late on a loaded machine)
        while peak.so_far_mb <= 48 and time.monotonic() < deadline:
            time.sleep(0.005)
        del block
    assert peak.method == "rss-sampled-1ms" and peak.mb > 48
    with PeakMemory("cpu") as idle:
        pass
    assert idle.mb < 48


def test_peak_memory_sees_a_step_that_reuses_memory_malloc_kept() -> None:
    """After a large free that malloc keeps (as after earlier work in a long process), the step's
    allocation comes from retained pages: it must still count. In a child process, as mallopt
    changes the allocator for the whole process."""
    script = textwrap.dedent("""
        import ctypes, ctypes.util, time, torch
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: every allocation from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: freed heap memory is kept
        from prunebench.metrics.cost import PeakMemory
        junk = torch.ones(2**26); del junk  # 256 MB freed and kept
        with PeakMemory("cpu") as peak:
            block = torch.ones(16 * 2**20)
            deadline = time.monotonic() + 10
            while peak.so_far_mb <= 48 and time.monotonic() < deadline:
                time.sleep(0.005)
            del block
        print(peak.mb)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) > 48


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
