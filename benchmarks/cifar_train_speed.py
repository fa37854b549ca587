"""CIFAR ResNet-20 training throughput on this CPU: each way of running the step, beside its floor.

Each mode trains ResNet-20 with prunebench's own ``train()`` (SGD, momentum 0.9, batch 128,
crop-flip augmentation, the per-batch host data path) on in-memory CIFAR-shaped tensors, at 1
and 2 torch threads. The modes are the recipe keys that change how a step runs: fp32 (the
default), ``precision: bf16`` (autocast on the CPU's BF16 units), ``channels_last``, both, and
``compile``. The modes and thread counts alternate within each round (one short training per
mode and thread count), so a shared machine's drift reaches all of them alike; each figure is
the median over rounds of examples per second of wall time, with the rounds' min and max. Each
timed training lasts about ``--seconds`` (its step count set from a short probe), after a
warm-up of 2 steps whose time is shown too: compiling costs that once per process.

The floor: ResNet-20's training work per example is three times its forward convolutions' MACs
(the forward pass, the gradient of the input, the gradient of the weights); each distinct
convolution shape is timed alone at the batch size and thread count, in the mode's dtype and
memory format, and the floor is the examples per second that those rates allow for that work
alone: nothing for batch norm, activations, the optimizer, the data or Python. The ratio
measured / floor says how much of the machine's convolution rate the whole training step keeps.

Where the rest goes (fp32, contiguous, per thread count): the data path (cutting a batch and
its crop-flip), the forward and backward pass, the optimizer step, and the share of the
process's CPU time spent in the kernel, each timed in the same rounds.

    PYTHONPATH=src python benchmarks/cifar_train_speed.py --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from benchmarks.common import cpu_name  # noqa: E402  (puts src/ on the path first)

from prunebench.data import DataSplits  # noqa: E402  # isort: skip
from prunebench.data.augment import random_crop_flip  # noqa: E402
from prunebench.metrics import mac_metrics  # noqa: E402
from prunebench.metrics.latency import torch_threads  # noqa: E402
from prunebench.metrics.roofline import conv_probes, median_seconds, op_costs  # noqa: E402
from prunebench.models import create_model  # noqa: E402
from prunebench.spec import TrainSpec  # noqa: E402
from prunebench.train import train  # noqa: E402

SHAPE = (3, 32, 32)
BATCH = 128
MODES: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
    "compile": {"compile": True},
    "compile + channels_last": {"compile": True, "channels_last": True},
}


def vector_flags() -> str:
    """The CPU's vector and BF16 flags (/proc/cpuinfo) and the kernels torch picked: bf16 runs in
    hardware only where avx512_bf16 or amx_bf16 is listed."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    listed = [flag for flag in wanted if flag in flags] or ["none of " + ", ".join(wanted)]
    return f"CPU flags: {' '.join(listed)}; torch CPU capability: {torch.backends.cpu.get_cpu_capability()}"


def synthetic_cifar(examples: int) -> DataSplits:
    """CIFAR-shaped normalized images and labels (the arithmetic does not depend on the pixels)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(examples, *SHAPE, generator=generator)
    y = torch.randint(0, 10, (examples,), generator=generator)
    empty_x, empty_y = x[:0], y[:0]
    return DataSplits(x, y, empty_x, empty_y, empty_x, empty_y, num_classes=10, name="cifar10-shaped")


def fresh_model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet-20", SHAPE, 10)


def spec_for(mode: str, steps: int) -> TrainSpec:
    return TrainSpec(epochs=1, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=BATCH, augment="crop-flip",
                     max_steps_per_epoch=steps, **MODES[mode])


def in_channels_last(call: Callable[[], object]) -> Callable[[], object]:
    """The probe's convolution (a ``functools.partial`` of conv2d) on a channels-last input."""
    assert isinstance(call, functools.partial)
    x, *rest = call.args
    return functools.partial(F.conv2d, x.contiguous(memory_format=torch.channels_last), *rest)


def conv_floor(threads: int, mode: str, repeats: int = 5) -> float:
    """Examples per second that the forward convolutions' measured rates allow for 3x their MACs."""
    dense = fresh_model().eval()
    costs = op_costs(dense, SHAPE, BATCH)
    dtype = torch.bfloat16 if MODES[mode].get("precision") == "bf16" else torch.float32
    channels_last = bool(MODES[mode].get("channels_last"))
    seconds = 0.0
    with torch_threads(threads), torch.inference_mode():
        for shape, probe in conv_probes(costs, dtype).items():
            call = in_channels_last(probe.call) if channels_last else probe.call
            seconds += median_seconds(call, 1, repeats) * sum(1 for c in costs if c.conv == shape)
    return BATCH / (3 * seconds)


def timed_training(mode: str, threads: int, data: DataSplits, seconds: float, max_steps: int) -> tuple[float, float]:
    """Examples per second of wall time of one ``train()``, and the seconds its warm-up took.

    A warm-up training of 2 steps (which compiles where the mode compiles) and a timed probe of 2
    steps come first, on the same model; the timed training then takes as many steps as fill about
    ``seconds`` at the probe's rate (3 to ``max_steps``), so that slow modes cost no hour."""
    model = fresh_model()
    with torch_threads(threads):
        start = time.perf_counter()
        train(model, data, spec_for(mode, 2), seed=0)
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        train(model, data, spec_for(mode, 2), seed=1)
        probe = (time.perf_counter() - start) / 2
        steps = max(3, min(max_steps, round(seconds / probe)))
        start = time.perf_counter()
        train(model, data, spec_for(mode, steps), seed=2)
        return steps * BATCH / (time.perf_counter() - start), warmup


def breakdown(threads: int, data: DataSplits, steps: int) -> dict[str, float]:
    """Milliseconds per fp32 step in each part, and the kernel's share of the CPU time."""
    model = fresh_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    parts = {"data and augmentation": 0.0, "forward and backward": 0.0, "optimizer step": 0.0}
    with torch_threads(threads):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        for step in range(steps + 1):
            t0 = time.perf_counter()
            keys = torch.randint(0, data.train_x.shape[0], (BATCH,), generator=generator)
            inputs = random_crop_flip(data.train_x[keys], generator)
            targets = data.train_y[keys]
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(inputs), targets).backward()
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            if step:  # the first step warms up
                for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                    parts[name] += seconds
        after = resource.getrusage(resource.RUSAGE_SELF)
    result = {name: seconds / steps * 1000 for name, seconds in parts.items()}
    user, system = after.ru_utime - usage.ru_utime, after.ru_stime - usage.ru_stime
    result["kernel share of CPU time"] = system / (user + system)
    return result


def measure(rounds: int, seconds: float, max_steps: int, threads: tuple[int, ...], modes: tuple[str, ...]) -> dict[str, Any]:
    data = synthetic_cifar(max_steps * BATCH)
    forward_macs = mac_metrics(fresh_model(), SHAPE).dense_total
    rates: dict[str, list[float]] = {f"{m} @ {t}": [] for t in threads for m in modes}
    warmups: dict[str, list[float]] = {key: [] for key in rates}
    parts: dict[int, list[dict[str, float]]] = {t: [] for t in threads}
    for round_ in range(rounds):
        for t in threads:
            for m in modes:
                rate, warmup = timed_training(m, t, data, seconds, max_steps)
                rates[f"{m} @ {t}"].append(rate)
                warmups[f"{m} @ {t}"].append(warmup)
            parts[t].append(breakdown(t, data, min(max_steps, 20)))
        print(f"round {round_ + 1}/{rounds} done (load average {os.getloadavg()[0]:.2f})", file=sys.stderr)
    floors = {f"{m} @ {t}": conv_floor(t, m) for t in threads for m in modes}
    return {
        "cpu": cpu_name(), "flags": vector_flags(), "logical_cores": os.cpu_count(), "torch": torch.__version__,
        "batch": BATCH,
        "seconds_per_timing": seconds, "rounds": rounds, "forward_macs_per_example": forward_macs,
        "examples_per_s": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in rates.items()},
        # the slowest round's: torch.compile compiles once per process, later rounds hit its cache
        "warmup_s": {k: max(v) for k, v in warmups.items()},
        "floor_examples_per_s": floors,
        "breakdown_ms": {t: {k: statistics.median(p[k] for p in parts[t]) for k in parts[t][0]} for t in threads},
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| mode | threads | examples/s (median, min-max) | floor (examples/s) | measured / floor | vs fp32 "
             "| first 2 steps, slowest round (s) |", "| --- | --: | --: | --: | --: | --: | --: |"]
    for key, figure in result["examples_per_s"].items():
        mode, threads = key.rsplit(" @ ", 1)
        base = result["examples_per_s"][f"fp32 @ {threads}"]["median"]
        floor = result["floor_examples_per_s"][key]
        lines.append(f"| {mode} | {threads} | {figure['median']:.0f} ({figure['min']:.0f}-{figure['max']:.0f}) | "
                     f"{floor:.0f} | {figure['median'] / floor:.2f} | {figure['median'] / base:.2f}x | "
                     f"{result['warmup_s'][key]:.1f} |")
    lines += ["", "| fp32 step part | " + " | ".join(f"{t} thread{'s' if int(t) > 1 else ''}"
                                                     for t in result["breakdown_ms"]) + " |",
              "| --- |" + " --: |" * len(result["breakdown_ms"])]
    names = next(iter(result["breakdown_ms"].values())).keys()
    for name in names:
        cells = [(f"{p[name]:.0%}" if name.startswith("kernel") else f"{p[name]:.1f} ms")
                 for p in result["breakdown_ms"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="about how long each timed training lasts")
    parser.add_argument("--max-steps", type=int, default=40, help="at most this many steps per timed training")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.rounds < 1 or args.max_steps < 3 or args.seconds <= 0:
        parser.error("--rounds must be at least 1, --max-steps at least 3, --seconds above 0")
    load_before = os.getloadavg()
    result = measure(args.rounds, args.seconds, args.max_steps, tuple(args.threads), tuple(args.modes))
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    print(f"ResNet-20 training, batch {BATCH}, about {args.seconds:g} s (3 to {args.max_steps} steps) x {args.rounds} "
          f"rounds per mode, wall clock; "
          f"{result['cpu']}, {result['logical_cores']} logical cores, torch {result['torch']}; load average "
          f"{load_before[0]:.2f} before, {result['load_average']['after'][0]:.2f} after")
    print(result["flags"])
    print(f"forward: {result['forward_macs_per_example'] / 1e6:.1f} MMAC per example; floor: 3x the forward "
          f"convolutions at their measured rate alone")
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
