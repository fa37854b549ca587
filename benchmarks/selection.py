"""(b) Global magnitude pruning of 25M weights: prunebench vs torch.nn.utils.prune.

The model is an MLP with six 2048x2048 hidden Linear layers (25,165,824 prunable weights;
the 2048x10 classifier and the biases are not pruned). Both sides prune it to whole-model
compression 10 in place, from the same initial weights:

- prunebench: ``prunebench.prune(model, data, "magnitude", compression=10)``, the public
  path (magnitude scores, exact global selection, mask applied to the weights);
- torch: ``global_unstructured(..., pruning_method=L1Unstructured, amount=<same count>)``.

Each run happens in a fresh subprocess, so its peak memory is its own: extra peak memory is
the process's peak resident set size during the call minus its resident set size just before
(after the model was built). The two variants alternate, one subprocess each.

Floors, from the copy bandwidth each worker measures for a buffer the size of the weights:
prunebench's call must at least read the weights and write their |w| scores (8 bytes a weight),
read the scores once to select (4), write the boolean mask (1), and apply it: read the weights
and the mask, write the weights (9): 22 bytes a weight. torch's time divided by that is the
most the speed ratio could be. Its extra memory cannot be below the scores (1.0x the weights,
new tensors from the magnitude scorer) plus the boolean mask (0.25x).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from benchmarks.common import ClockName, Result, measure_bandwidth, paired_ratios, quartiles
from prunebench import DataSplits, PruneSpec, prunable_parameters, prune
from prunebench.models.mlp import MLP
from prunebench.pruning.prune import keep_count

NAME = "select"
SPEED_TARGET = 10.0  # torch time / prunebench time
MEMORY_TARGET = 1.5  # prunebench extra peak memory / bytes of the prunable weights
COMPRESSION = 10.0
WIDTH = 2048
HIDDEN_LAYERS = 6  # 6 x 2048 x 2048 = 25,165,824 prunable weights
WARMUP_LAYERS = 3  # big enough (3.1M) to take the same code path as the real run
WORKER_TIMEOUT_S = 600
FLOOR_BYTES_PER_WEIGHT = 22  # see the docstring
MEMORY_FLOOR = 1.25  # scores (1.0x) + boolean mask (0.25x)
TORCH_MEMORY_FLOOR = 2.0  # torch's float mask (1.0x) + the weight it recomputes from it (1.0x)


@dataclass(frozen=True)
class Settings:
    pairs: int  # prunebench / torch subprocess pairs


FULL = Settings(pairs=3)
QUICK = Settings(pairs=1)


def build_model(width: int, hidden_layers: int) -> nn.Module:
    torch.manual_seed(0)
    return MLP(width, (width,) * hidden_layers, 10)


def tiny_data(width: int) -> DataSplits:
    """Magnitude pruning reads no data, but the public API takes a dataset."""
    x, y = torch.zeros(16, width), torch.zeros(16, dtype=torch.long)
    return DataSplits.from_tensors(train=(x, y), test=(x, y), num_classes=10)


def release_free_heap() -> None:
    """Hand freed heap memory back to the OS (glibc), so the baseline holds no spare memory
    that the measured call could reuse without it showing in its peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def current_rss() -> int:
    """Resident set size now, in bytes (Linux /proc; 0 where it is not available)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) so the peak covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Peak resident set size in bytes: VmHWM where there is one, else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def prune_with(variant: str, model: nn.Module, data: DataSplits, amount: int) -> list[torch.Tensor]:
    """Prune in place; returns the keep-masks (True / nonzero = kept) the variant produced."""
    if variant == "prunebench":
        mask = prune(model, data, "magnitude", compression=COMPRESSION)
        return [mask[name] for name in mask]
    owners = [(model.get_submodule(n.rpartition(".")[0]), "weight") for n in prunable_parameters(model)]
    torch_prune.global_unstructured(owners, pruning_method=torch_prune.L1Unstructured, amount=amount)
    return [module.weight_mask for module, _ in owners]


def pruned_count(masks: list[torch.Tensor]) -> int:
    return sum(m.numel() - int(torch.count_nonzero(m)) for m in masks)


class WorkerRun(TypedDict):
    """What one worker process reports (as one line of JSON)."""

    variant: str
    seconds: dict[str, float]  # by clock name: "wall", "cpu"
    extra_peak_bytes: int
    weight_bytes: int
    expected_pruned: int
    pruned: int
    peak_source: str
    bandwidth: float  # bytes per second, copy bandwidth measured in this worker


def worker(variant: str, threads: int, width: int, hidden_layers: int) -> WorkerRun:
    """One measured pruning call in this (fresh) process."""
    torch.set_num_threads(threads)
    warm = build_model(width, WARMUP_LAYERS)  # lazy initialisation happens here, not below
    prune_with(variant, warm, tiny_data(width), prunable_count(warm) - keep_for(warm))
    del warm
    model = build_model(width, hidden_layers)
    data = tiny_data(width)
    weight_bytes = sum(p.numel() * p.element_size() for p in prunable_parameters(model).values())
    amount = prunable_count(model) - keep_for(model)
    gc.collect()
    release_free_heap()
    before = current_rss()
    resettable = reset_peak_rss()
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    masks = prune_with(variant, model, data, amount)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    peak = peak_rss()
    bandwidth = measure_bandwidth(weight_bytes)  # after the call: it must not disturb the peak
    return {
        "variant": variant,
        "seconds": {"wall": wall, "cpu": cpu},
        "extra_peak_bytes": peak - before,
        "weight_bytes": weight_bytes,
        "expected_pruned": amount,
        "pruned": pruned_count(masks),
        "peak_source": "VmHWM" if resettable else "ru_maxrss",
        "bandwidth": bandwidth.bytes_per_second,
    }


def prunable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in prunable_parameters(model).values())


def keep_for(model: nn.Module) -> int:
    return keep_count(model, PruneSpec(compression=COMPRESSION))


def run_worker(variant: str, threads: int) -> WorkerRun:
    """Run one measurement in a fresh interpreter that imports what this one imports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-m", "benchmarks.selection", variant, "--threads", str(threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"selection worker {variant} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool, threads: int, clock: ClockName) -> list[Result]:
    settings = QUICK if quick else FULL
    runs: dict[str, list[WorkerRun]] = {"prunebench": [], "torch": []}
    for pair in range(settings.pairs):
        order = ["prunebench", "torch"] if pair % 2 == 0 else ["torch", "prunebench"]
        for variant in order:
            runs[variant].append(run_worker(variant, threads))
    return summarize(runs, clock)


def summarize(runs: dict[str, list[WorkerRun]], clock: ClockName) -> list[Result]:
    seconds = {v: [r["seconds"][clock] for r in rs] for v, rs in runs.items()}
    speedups = paired_ratios(seconds["torch"], seconds["prunebench"])
    weight_bytes = runs["prunebench"][0]["weight_bytes"]
    memory = {v: [r["extra_peak_bytes"] / weight_bytes for r in rs] for v, rs in runs.items()}
    counts = {v: {r["pruned"] for r in rs} for v, rs in runs.items()}
    expected = runs["prunebench"][0]["expected_pruned"]
    same = counts["prunebench"] == counts["torch"] == {expected}
    weights = f"{weight_bytes // 4:,} prunable fp32 weights ({weight_bytes / 2**20:.0f} MiB)"
    source = runs["prunebench"][0]["peak_source"]
    bandwidth = max(r["bandwidth"] for rs in runs.values() for r in rs)
    floor_seconds = FLOOR_BYTES_PER_WEIGHT * (weight_bytes // 4) / bandwidth
    return [
        Result(
            benchmark=NAME,
            name="torch.nn.utils.prune time / prunebench time (25M weights)",
            measured=statistics.median(speedups),
            target=SPEED_TARGET,
            goal=">=",
            spread=quartiles(speedups),
            detail=f"median {statistics.median(seconds['prunebench']):.3f} s vs "
            f"{statistics.median(seconds['torch']):.2f} s; {weights}; {len(speedups)} subprocess pairs",
            extra={
                "seconds": {v: [r["seconds"] for r in rs] for v, rs in runs.items()},
                "bandwidth_bytes_per_s": bandwidth,
            },
            floor=statistics.median(seconds["torch"]) / floor_seconds,
            floor_note=f"the most this ratio could be: torch's time / {FLOOR_BYTES_PER_WEIGHT} B x "
            f"{weight_bytes // 4:,} weights at {bandwidth / 1e9:.1f} GB/s (copy of {weight_bytes / 2**20:.0f} MiB, "
            f"measured in the workers) = {floor_seconds * 1e3:.1f} ms",
        ),
        Result(
            benchmark=NAME,
            name="prunebench extra peak memory / weight bytes",
            measured=max(memory["prunebench"]),  # the worst run, not a typical one
            target=MEMORY_TARGET,
            goal="<",
            detail=f"peak RSS ({source}) minus RSS before the call, worst of {len(memory['prunebench'])} runs",
            extra={"ratios": memory["prunebench"]},
            floor=MEMORY_FLOOR,
            floor_note="the |w| scores (1.0x, new tensors) and the boolean mask (0.25x)",
        ),
        Result(
            benchmark=NAME,
            name="torch.nn.utils.prune extra peak memory / weight bytes",
            measured=max(memory["torch"]),
            detail="same measurement, for reference",
            extra={"ratios": memory["torch"]},
            floor=TORCH_MEMORY_FLOOR,
            floor_note="its float mask (1.0x) and the weight recomputed from it (1.0x)",
        ),
        Result(
            benchmark=NAME,
            name="same number of weights pruned",
            measured=1.0 if same else 0.0,
            target=1.0,
            goal="==",
            unit="",
            detail=f"expected {expected:,}; prunebench {sorted(counts['prunebench'])}, "
            f"torch {sorted(counts['torch'])} (1 = all equal)",
            floor_note="a check of the result, not a cost",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="one measured pruning run (used by benchmarks/run.py)")
    parser.add_argument("variant", choices=["prunebench", "torch"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(worker(args.variant, args.threads, WIDTH, HIDDEN_LAYERS)))


if __name__ == "__main__":
    main()
