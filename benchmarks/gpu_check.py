"""GPU check: one CIFAR-10 ResNet-20 epoch in each training mode, and channel pruning end to end on CUDA.

    python benchmarks/gpu_check.py                 # needs a CUDA GPU; a few minutes
    python benchmarks/gpu_check.py --dry-run       # the same logic on the CPU at tiny sizes
    python benchmarks/gpu_check.py --data-dir DIR --markdown gpu.md

Part 1 trains ResNet-20 from one initialization for two epochs in each mode (fp32, bf16, fp16,
channels-last, compile) and prints the first epoch (which pays for warm-up and compilation) and
the second. The data is CIFAR-10 from ``<data-dir>/cifar-10`` when it is there (default
``../shared/data``), else random tensors of CIFAR-10's shape, said in the table. Part 2 runs
``l1_filter`` and ``random_channel`` to 2x theoretical speedup through ``run_experiment`` with
latency on (one short dense epoch, one fine-tuning epoch) and prints accuracy and speedups.
``--dry-run`` decodes no dataset: 256 random images, 3 steps an epoch, one CPU thread, and the
pruning comparison on the registered ``synthetic`` dataset.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import common  # noqa: E402,F401  (puts src/ on the path first)
from prunebench import DataError, DataSplits, ExperimentSpec, PruneSpec, RunSettings, TrainSpec  # noqa: E402
from prunebench import create_model, load_dataset, run_experiment  # noqa: E402
from prunebench.metrics import evaluate  # noqa: E402
from prunebench.train import train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODES: dict[str, dict[str, object]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp16": {"precision": "fp16"},
    "channels-last": {"channels_last": True},
    "compile": {"compile": True},
}
STRATEGIES = ("l1_filter", "random_channel")
SPEEDUP = 2.0
SEED = 0


@dataclass(frozen=True)
class Sizes:
    examples: int | None  # training examples (None: all of CIFAR-10's training split)
    batch_size: int
    max_steps: int | None  # per epoch
    latency_repeats: int
    latency_batch_size: int


FULL = Sizes(examples=None, batch_size=128, max_steps=None, latency_repeats=30, latency_batch_size=64)
DRY = Sizes(examples=256, batch_size=32, max_steps=3, latency_repeats=3, latency_batch_size=8)


def has_cifar(data_dir: Path | None) -> bool:
    return data_dir is not None and any((data_dir / name).is_dir() for name in ("cifar-10", "cifar10"))


def cifar_or_random(data_dir: Path | None, sizes: Sizes, device: torch.device) -> tuple[DataSplits, str]:
    """CIFAR-10 when ``data_dir`` has it, else random tensors of its shape; and which it is."""
    try:
        if not has_cifar(data_dir):
            raise DataError("no CIFAR-10")
        data, source = load_dataset("cifar10", data_dir=data_dir, download=False, subset=sizes.examples), "CIFAR-10"
    except DataError:
        n = sizes.examples or 45_000
        generator = torch.Generator().manual_seed(SEED)
        images = torch.randn(n + n // 10, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 10, (n + n // 10,), generator=generator)
        data = DataSplits.from_tensors(train=(images[:n], labels[:n]), test=(images[n:], labels[n:]))
        source = "random tensors of CIFAR-10's shape"
    return data.to(device), source


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_modes(data: DataSplits, sizes: Sizes, device: torch.device) -> list[dict[str, object]]:
    """Two epochs of ResNet-20 per mode from the same initial weights: seconds for each, validation top-1."""
    torch.manual_seed(SEED)
    initial = create_model("resnet-20", data.input_shape, data.num_classes).state_dict()
    rows = []
    for label, mode in MODES.items():
        model = create_model("resnet-20", data.input_shape, data.num_classes).to(device)
        model.load_state_dict(initial)
        spec = TrainSpec(epochs=1, lr=0.1, batch_size=sizes.batch_size, max_steps_per_epoch=sizes.max_steps, **mode)
        seconds = []
        for epoch in range(2):  # the first pays for warm-up (cuDNN autotuning, compilation)
            synchronize(device)
            start = time.perf_counter()
            train(model, data, spec, seed=SEED + epoch, stage=label)
            synchronize(device)
            seconds.append(time.perf_counter() - start)
        top1 = evaluate(model, data.val_x, data.val_y).top1 if data.val_x.shape[0] else float("nan")
        rows.append({"mode": label, "first": seconds[0], "epoch": seconds[1], "top1": top1})
    for row in rows:
        row["speedup"] = rows[0]["epoch"] / row["epoch"]  # type: ignore[operator]
    return rows


def prune_comparison(data_dir: Path | None, sizes: Sizes, device: str, results: Path) -> list[dict[str, object]]:
    """``l1_filter`` and ``random_channel`` at SPEEDUP through the run pipeline, latency on.

    On CIFAR-10 when ``data_dir`` has it, else on the registered ``synthetic`` dataset.
    """
    recipe = {"epochs": 1, "batch_size": sizes.batch_size, "max_steps_per_epoch": sizes.max_steps}
    settings = RunSettings(
        data_dir=data_dir, download=False, device=device, threads=1 if device == "cpu" else None, latency=True,
        latency_repeats=sizes.latency_repeats, latency_batch_size=sizes.latency_batch_size,
    )
    rows = []
    for strategy in STRATEGIES:
        spec = ExperimentSpec(
            dataset="cifar10" if has_cifar(data_dir) else "synthetic", model="resnet-20", seed=SEED, subset=sizes.examples,
            train=TrainSpec(lr=0.1, **recipe), finetune=TrainSpec(lr=0.01, **recipe),  # type: ignore[arg-type]
            prune=PruneSpec(strategy=strategy, structure="channel", speedup=SPEEDUP, score_batches=2),
        )
        result = run_experiment(spec, settings, results)
        latency = result.latency
        rows.append({
            "strategy": strategy, "dataset": spec.dataset,
            "top1": result.accuracy.top1 if result.accuracy else float("nan"),
            "theoretical": result.macs.theoretical_speedup,
            "measured": latency.measured_speedup if latency else float("nan"),
            "dense_ms": latency.dense_ms if latency else float("nan"),
            "pruned_ms": latency.pruned_ms if latency else float("nan"),
            "runtime": f"{latency.runtime}, {latency.device}, batch {latency.batch_size}" if latency else "none",
        })
    return rows


def markdown(modes: list[dict[str, object]], pruning: list[dict[str, object]], header: str) -> str:
    lines = [header, "", "| mode | first epoch (s) | epoch (s) | speedup vs fp32 | val top-1 |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['mode']} | {r['first']:.2f} | {r['epoch']:.2f} | {r['speedup']:.2f}x | {r['top1']:.2%} |" for r in modes
    ]
    lines += [
        "", "| strategy | dataset | top-1 | theoretical speedup | measured speedup | dense ms | pruned ms | latency |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['strategy']} | {r['dataset']} | {r['top1']:.2%} | {r['theoretical']:.2f}x | {r['measured']:.2f}x "
        f"| {r['dense_ms']:.2f} | {r['pruned_ms']:.2f} | {r['runtime']} |"
        for r in pruning
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same logic on the CPU at tiny sizes")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--results", type=Path, help="results folder for part 2 (default: a temporary one)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU (--dry-run checks the logic on the CPU)", file=sys.stderr)
        return 1
    device, sizes = ("cpu", DRY) if args.dry_run else ("cuda", FULL)
    data_dir = None if args.dry_run else args.data_dir  # a dry run decodes no dataset: random tensors
    threads = torch.get_num_threads()
    if args.dry_run:
        torch.set_num_threads(1)
    try:
        data, source = cifar_or_random(data_dir, sizes, torch.device(device))
        modes = time_modes(data, sizes, torch.device(device))
        with tempfile.TemporaryDirectory() as scratch:
            pruning = prune_comparison(data_dir, sizes, device, args.results or Path(scratch))
    finally:
        torch.set_num_threads(threads)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    header = (
        f"ResNet-20 on {source}, {data.train_x.shape[0]:,} training images, batch {sizes.batch_size}, "
        f"{name}, torch {torch.__version__}"
    )
    text = markdown(modes, pruning, header)
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
