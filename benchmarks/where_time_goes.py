"""Where the time goes: a roofline prediction of ResNet-56's dense and channel-pruned latency.

ResNet-56 at CIFAR size is pruned with l1_filter (scope layer) to about 2x theoretical speedup
and compacted, as in structured_speedup.py. Every op of both forward passes at the batch size
is listed with its MACs and bytes moved (``prunebench.metrics.roofline.op_costs``). In each
round, the dense and the compact model, a 512x512 matrix multiply (GEMM throughput), an
elementwise add over tensors of the models' typical activation size (bandwidth) and every
distinct convolution shape of the two models on its own are timed in turns; the round's rates
give each op's predicted time, max(MACs / throughput, bytes / bandwidth), summed per model.
Timing everything in the same rounds exposes the prediction and the measurement to the same
load, so the per-round ratio predicted / measured cancels most of a shared machine's drift.

Two predictions: "gemm" bounds every op's compute by the GEMM rate (the textbook roofline);
"per-shape" bounds each convolution by the rate its own shape reaches alone.

    PYTHONPATH=src python benchmarks/where_time_goes.py --threads 2 --batch 64 --rounds 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import ClockName, interleaved_times  # noqa: E402  (puts src/ on the path first)

from prunebench.metrics import mac_metrics  # noqa: E402  # isort: skip
from prunebench.metrics.latency import cpu_name, steady_allocator, torch_runner, torch_threads  # noqa: E402
from prunebench.metrics.roofline import (  # noqa: E402
    Machine,
    OpCost,
    Probe,
    bandwidth_probe,
    by_kind,
    conv_probes,
    gemm_probe,
    op_costs,
    predicted_seconds,
    roofline,
    typical_tensor_bytes,
)
from prunebench.models import create_model  # noqa: E402
from prunebench.pruning.channels import ChannelTarget, prune_channels  # noqa: E402
from prunebench.pruning.compact import compact  # noqa: E402

SHAPE = (3, 32, 32)


def pruned_resnet56(speedup: float) -> tuple[nn.Module, nn.Module]:
    """Dense ResNet-56 (random initialization: latency does not depend on weight values) and
    its l1_filter-pruned, compacted copy at ``speedup`` theoretical."""
    torch.manual_seed(0)
    dense = create_model("resnet-56", SHAPE, 10).eval()
    selection = prune_channels(dense, SHAPE, "l1_filter", ChannelTarget("speedup", speedup), scope="layer")
    return dense, compact(dense, selection.mask, SHAPE).eval()


def machines_per_round(times_ms: dict[str, list[float]], probes: dict[str, Probe], shapes: dict[str, Any],
                       threads: int) -> list[Machine]:
    """One Machine per timing round, from that round's probe times."""
    rounds = len(times_ms["gemm"])
    rate = {name: [probe.work / (t / 1000) for t in times_ms[name]] for name, probe in probes.items()}
    return [Machine(gemm_macs_per_s=rate["gemm"][r], bandwidth_bytes_per_s=rate["bandwidth"][r], threads=threads,
                    conv_macs_per_s={shape: rate[name][r] for name, shape in shapes.items()}) for r in range(rounds)]


PROFILED_KINDS = (("conv", "conv"), ("batch_norm", "batch_norm"), ("addmm", "linear"), ("relu", "elementwise"),
                  ("add", "elementwise"), ("pad", "elementwise"), ("mean", "pool"), ("pool", "pool"))


def profiled_ms_by_kind(model: nn.Module, batch: int, threads: int, shape: tuple[int, ...],
                        passes: int = 3) -> dict[str, float]:
    """Measured milliseconds per pass by op kind: torch.profiler's self CPU time of each aten op
    (a check on the prediction's split; the profiler adds a little time of its own)."""
    from torch.profiler import ProfilerActivity, profile

    run = torch_runner(model, shape, batch)
    with torch_threads(threads):
        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(passes):
                run()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        kind = next((k for word, k in PROFILED_KINDS if word in event.key), "other")
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total / 1000 / passes
    return totals


def predict_against_measured(models: dict[str, nn.Module], batch: int, threads: int, warmup: int,
                             rounds: int, clock: ClockName = "wall",
                             shape: tuple[int, ...] = SHAPE) -> dict[str, Any]:
    """Time ``models`` (one labelled "dense") and the machine's probes in the same rounds;
    predicted and measured time per model, and predicted ceiling beside measured speedup."""
    costs: dict[str, list[OpCost]] = {label: op_costs(m, shape, batch) for label, m in models.items()}
    every = [c for cs in costs.values() for c in cs]
    convs = conv_probes(every)
    shapes = {f"conv{i}": shape for i, shape in enumerate(convs)}
    probes: dict[str, Probe] = {"gemm": gemm_probe(), "bandwidth": bandwidth_probe(typical_tensor_bytes(every)),
                                **{name: convs[shape] for name, shape in shapes.items()}}
    with torch_threads(threads), torch.inference_mode():
        calls = {**{label: torch_runner(m, shape, batch) for label, m in models.items()},
                 **{name: p.call for name, p in probes.items()}}
        for call in calls.values():
            for _ in range(warmup):
                call()
        seconds = interleaved_times(calls, rounds, 1, clock)  # type: ignore[arg-type]
    times = {name: [s * 1000 for s in per_round] for name, per_round in seconds.items()}
    machines = machines_per_round(times, probes, shapes, threads)
    gemm_only = [Machine(m.gemm_macs_per_s, m.bandwidth_bytes_per_s, threads) for m in machines]
    result: dict[str, Any] = {
        "gemm_gmacs_per_s": statistics.median(m.gemm_macs_per_s for m in machines) / 1e9,
        "bandwidth_gb_per_s": statistics.median(m.bandwidth_bytes_per_s for m in machines) / 1e9,
        "bandwidth_tensor_bytes": typical_tensor_bytes(every),
        "conv_gmacs_per_s": {str(shape): statistics.median(m.conv_macs_per_s[shape] for m in machines) / 1e9
                             for shape in shapes.values()},
        "models": {},
    }
    for label in models:
        measured = times[label]
        row: dict[str, Any] = {"ops": len(costs[label]), "macs": sum(c.macs for c in costs[label]),
                               "bytes": sum(c.bytes for c in costs[label]),
                               "measured_ms": statistics.median(measured)}
        for name, per_round in (("per-shape", machines), ("gemm", gemm_only)):
            predicted = [predicted_seconds(costs[label], m) * 1000 for m in per_round]
            row[name] = {"predicted_ms": statistics.median(predicted),
                         "predicted_over_measured": statistics.median(p / t for p, t in zip(predicted, measured)),
                         "ratio_of_medians": statistics.median(predicted) / statistics.median(measured)}
        kinds = [by_kind(roofline(costs[label], m)) for m in machines]
        row["predicted_ms_by_kind"] = {k: statistics.median(r[k] for r in kinds) * 1000 for k in kinds[0]}
        row["memory_bound_ops"] = statistics.median(
            sum(t.bound == "memory" for t in roofline(costs[label], m)) for m in machines)
        row["profiled_ms_by_kind"] = profiled_ms_by_kind(models[label], batch, threads, shape)
        result["models"][label] = row
    dense = times["dense"]
    for label in models:
        if label == "dense":
            continue
        row = result["models"][label]
        row["measured_speedup"] = statistics.median(d / p for d, p in zip(dense, times[label]))
        for name, per_round in (("per-shape", machines), ("gemm", gemm_only)):
            ceilings = [predicted_seconds(costs["dense"], m) / predicted_seconds(costs[label], m) for m in per_round]
            row[name]["predicted_ceiling"] = statistics.median(ceilings)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--speedup", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time (latency, default) or process CPU time (on a shared machine, with 1 thread)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    steady_allocator()
    dense, small = pruned_resnet56(args.speedup)
    theoretical = mac_metrics(dense, SHAPE).dense_total / mac_metrics(small, SHAPE).dense_total
    result: dict[str, Any] = {"torch": torch.__version__, "device": cpu_name(), "threads": args.threads,
                              "batch": args.batch, "clock": args.clock, "theoretical_speedup": theoretical,
                              "load_average_before": os.getloadavg()}
    result.update(predict_against_measured({"dense": dense, "compact": small}, args.batch, args.threads,
                                           args.warmup, args.rounds, args.clock))
    result["load_average_after"] = os.getloadavg()
    print(f"ResNet-56, batch {args.batch}, {args.threads} threads, float32, torch eager, {args.clock} clock "
          f"(load average {result['load_average_before'][0]:.1f} before, {result['load_average_after'][0]:.1f} after)")
    print(f"measured GEMM throughput (512x512 matmul): {result['gemm_gmacs_per_s']:.1f} GMAC/s; bandwidth (add over "
          f"{result['bandwidth_tensor_bytes'] / 2**20:.1f} MiB tensors): {result['bandwidth_gb_per_s']:.1f} GB/s")
    for shape, gmacs in result["conv_gmacs_per_s"].items():
        print(f"  conv {shape}: {gmacs:.1f} GMAC/s")
    for label, row in result["models"].items():
        kinds = ", ".join(f"{k} {v:.1f}" for k, v in sorted(row["predicted_ms_by_kind"].items(), key=lambda kv: -kv[1]))
        print(f"{label}: {row['macs'] / 1e9:.2f} GMAC, {row['bytes'] / 2**20:.0f} MiB moved, {row['ops']} ops "
              f"({row['memory_bound_ops']} memory-bound); measured {row['measured_ms']:.1f} ms")
        for name in ("per-shape", "gemm"):
            p = row[name]
            extra = (f"; predicted ceiling {p['predicted_ceiling']:.2f}x, measured speedup {row['measured_speedup']:.2f}x,"
                     f" theoretical {theoretical:.2f}x" if "predicted_ceiling" in p else "")
            print(f"  {name:>9} roofline: predicted {p['predicted_ms']:.1f} ms, predicted / measured "
                  f"{p['predicted_over_measured']:.2f} (median of per-round ratios; ratio of medians "
                  f"{p['ratio_of_medians']:.2f}){extra}")
        print(f"  predicted ms by kind (per-shape, median over rounds): {kinds}")
        profiled = ", ".join(f"{k} {v:.1f}" for k, v in sorted(row["profiled_ms_by_kind"].items(), key=lambda kv: -kv[1]))
        print(f"  profiled ms by kind (torch.profiler self time, 3 passes): {profiled}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
