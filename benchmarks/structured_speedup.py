"""Measured versus theoretical speedup of channel pruning, and sparse CSR Linear layers.

ResNet-56 at CIFAR input size (3x32x32) is pruned with l1_filter to about 2x theoretical
speedup (dense MACs / pruned MACs), compacted, and timed dense / masked / compact at batch 64
(throughput) and batch 1 (latency) in every deployment form (eager; BN folded; BN folded +
channels-last) under every runtime (torch eager, torch.compile with inductor, ONNX Runtime at
ORT_ENABLE_ALL), each form x runtime in turns. Measured speedup is printed per form x runtime
(dense and pruned measured the same way) and best against best (each model in its own fastest
form and runtime). ``--model vgg-16-bn`` or ``--model resnet-50`` (224x224) time those instead;
``--quick`` is a short smoke run (ResNet-20, small input and batch, few repeats). Torch-Pruning's own
pruner (MetaPruner with its L1 group importance, same ignored layers, pruning ratio chosen
for the same MAC reduction) runs side by side on the same model. Weights are the random
initialization: latency does not depend on their values.

A second part (``--ceiling``) asks what any channel structure of ResNet-56 can reach on this
machine: it builds the compact architecture for given residual-stream and block-inner widths
per stage directly (no pruning method involved) and times it against the dense model:
``--ceiling`` for the few structures of CEILING_WIDTHS, ``--ceiling grid`` for every structure
of ``width_grid`` (39 between 1.9x and 2.3x theoretical). Each row also prints the roofline's
predicted ceiling for the structure (prunebench.metrics.roofline, on rates measured before
the structure is timed; benchmarks/where_time_goes.py compares prediction and measurement).

A third part times LeNet-300-100's Linear layers with unstructured masks: dense kernels
versus torch's sparse CSR kernels.

    PYTHONPATH=src python benchmarks/structured_speedup.py --threads 2 --ceiling --out results.json
    PYTHONPATH=src python benchmarks/structured_speedup.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.where_time_goes import predict_against_measured  # noqa: E402  (puts src/ on the path first)

from prunebench.metrics import mac_metrics, size_metrics  # noqa: E402  # isort: skip
from prunebench.metrics.latency import (  # noqa: E402
    ONNX,
    RUNTIMES,
    FormTiming,
    LatencyRecord,
    best_against_best,
    cpu_name,
    export_onnx,
    interleaved_times,
    measured_speedup,
    onnx_runner,
    paired_speedup,
    sparse_csr_linears,
    steady_allocator,
    summarize,
    time_forms,
    torch_runner,
    torch_threads,
)
from prunebench.latency_names import EAGER, FOLDED  # noqa: E402
from prunebench.metrics.roofline import measure_machine, op_costs, predicted_ceiling  # noqa: E402
from prunebench.models import create_model  # noqa: E402
from prunebench.models.deploy import FORMS, deployment_form  # noqa: E402
from prunebench.models.cifar_resnet import CifarResNet, PadShortcut  # noqa: E402
from prunebench.pruning.channels import ChannelTarget, excluded_layers, prune_channels  # noqa: E402
from prunebench.pruning.compact import compact  # noqa: E402

SHAPE = (3, 32, 32)
SHAPES = {"resnet-56": SHAPE, "vgg-16-bn": SHAPE, "resnet-50": (3, 224, 224)}
QUICK = {"model": "resnet-20", "shape": (3, 16, 16), "batches": [4], "warmup": 1, "repeats": 3, "ceiling_rounds": 2}


def torch_pruning_reference(model: nn.Module, speedup: float, shape: tuple[int, ...] = SHAPE) -> nn.Module:
    """Torch-Pruning's own MetaPruner (L1 group importance, uniform per-layer ratio) on a copy,
    with the pruning ratio bisected to reach ``speedup`` in Torch-Pruning's own MAC count."""
    import copy

    import torch_pruning as tp

    example = torch.zeros(1, *shape)
    base_macs, _ = tp.utils.count_ops_and_params(model, example)
    low, high, best = 0.0, 0.95, None
    for _ in range(12):
        ratio = (low + high) / 2
        candidate = copy.deepcopy(model)
        ignored = [candidate.get_submodule(n) for n in excluded_layers(candidate)]
        pruner = tp.pruner.MetaPruner(candidate, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                      pruning_ratio=ratio, ignored_layers=ignored)
        pruner.step()
        macs, _ = tp.utils.count_ops_and_params(candidate, example)
        if base_macs / macs >= speedup:
            best, high = candidate, ratio
        else:
            low = ratio
    assert best is not None
    return best


def records_from(times: dict[str, list[float]], runtime: str, batch: int, threads: int, warmup: int) -> list[LatencyRecord]:
    allocator = steady_allocator() if runtime == "torch-eager" else ""
    return [summarize(t, model=label, runtime=runtime, device=cpu_name(), dtype="float32", batch_size=batch,
                      threads=threads, warmup=warmup, allocator=allocator) for label, t in times.items()]


def time_all(models: dict[str, nn.Module], batch: int, threads: int, warmup: int, repeats: int,
             onnx_dir: Path | None, quiet: bool = False) -> tuple[list[LatencyRecord], list[dict[str, Any]]]:
    """Interleaved timing of every model, per runtime; records plus per-round paired ratios."""
    records, paired = [], []
    runtimes: dict[str, dict[str, Callable[[], object]]] = {}
    with torch_threads(threads):
        runtimes["torch-eager"] = {label: torch_runner(m, SHAPE, batch) for label, m in models.items()}
        if onnx_dir is not None:
            onnx_dir.mkdir(parents=True, exist_ok=True)
            for label, model in models.items():
                path = onnx_dir / f"{label}.onnx"
                if not path.exists():
                    export_onnx(model, SHAPE, path)
            runtimes["onnxruntime"] = {label: onnx_runner(onnx_dir / f"{label}.onnx", SHAPE, batch, threads)
                                       for label in models}
        for runtime, runners in runtimes.items():
            times = interleaved_times(runners, warmup, repeats)
            records += records_from(times, runtime, batch, threads, warmup)
            for label in models:
                if label != "dense":
                    median, q1, q3 = paired_speedup(times["dense"], times[label])
                    paired.append({"model": label, "runtime": runtime, "batch_size": batch, "threads": threads,
                                   "paired_median": median, "paired_q1": q1, "paired_q3": q3})
    if not quiet:
        for r in records:
            print(r.describe(), flush=True)
    return records, paired


def time_every_form(models: dict[str, nn.Module], shape: tuple[int, ...], batch: int,
                    args: argparse.Namespace) -> list[FormTiming]:
    """Every model in every form x runtime of ``args``, the models of one form x runtime in turns."""
    timings = time_forms(models, shape, batch, forms=tuple(args.forms), runtimes=tuple(args.runtimes),
                         threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    for t in timings:
        if t.skipped:
            print(f"{t.runtime} / {t.form} batch {batch}: skipped ({t.skipped})", file=sys.stderr, flush=True)
        for r in t.records.values():
            print(r.describe(), flush=True)
    return timings


def structured(args: argparse.Namespace) -> dict[str, Any]:
    shape = args.shape
    torch.manual_seed(0)
    model = create_model(args.model, shape, 10).eval()
    selection = prune_channels(model, shape, "l1_filter", ChannelTarget("speedup", args.speedup), scope=args.scope)
    masked = create_model(args.model, shape, 10)
    masked.load_state_dict(model.state_dict())
    selection.mask.apply(masked)
    small = compact(model, selection.mask, shape)
    models: dict[str, nn.Module] = {"dense": model, "masked": masked.eval(), "compact": small.eval()}
    try:
        models["torch-pruning"] = torch_pruning_reference(model, args.speedup, shape).eval()
    except ImportError:
        print("torch-pruning not installed: no side-by-side reference", file=sys.stderr)
    counts = {}
    for label, m in models.items():
        macs, size = mac_metrics(m, shape), size_metrics(m, [])
        counts[label] = {"macs_effective": macs.effective_total, "params_nonzero": size.params_nonzero,
                         "theoretical_speedup": mac_metrics(model, shape).dense_total / macs.effective_total}
        print(label, counts[label], flush=True)
    ceilings = predicted_ceilings(models, shape, args) if args.ceiling_rounds else []
    speedups, best, skipped, records = [], [], [], []
    for batch in args.batches:
        timings = time_every_form(models, shape, batch, args)
        for t in timings:
            if t.skipped:
                skipped.append({"runtime": t.runtime, "form": t.form, "batch_size": batch, "reason": t.skipped})
                continue
            records += [r.to_dict() for r in t.records.values()]
            dense = t.records["dense"]
            for label, r in t.records.items():
                if label == "dense":
                    continue
                theory = counts[label]["theoretical_speedup"]
                median, q1, q3 = t.paired("dense", label)
                speedups.append({"model": label, "runtime": t.runtime, "form": t.form, "batch_size": batch,
                                 "threads": r.threads, "device": r.device, "dtype": r.dtype, "theoretical": theory,
                                 "measured_median_ratio": measured_speedup(dense, r), "measured_paired": median,
                                 "measured_min_ratio": dense.min_ms / r.min_ms, "paired_iqr": [q1, q3],
                                 "fraction_of_theoretical": median / theory})
        # Best against best over every runtime ("any"), then within each runtime.
        groups = {"any": timings, **{rt: [t for t in timings if t.runtime == rt] for rt in dict.fromkeys(t.runtime for t in timings)}}
        for within, group in groups.items():
            for label in models:
                if label != "dense" and any(not t.skipped for t in group):
                    b = best_against_best(group, "dense", label)
                    theory = counts[label]["theoretical_speedup"]
                    best.append({"model": label, "batch_size": batch, "within": within, "theoretical": theory,
                                 "measured": b.speedup, "fraction_of_theoretical": b.speedup / theory,
                                 "dense": {"runtime": b.dense.runtime, "form": b.dense.form, "median_ms": b.dense.median_ms},
                                 "pruned": {"runtime": b.pruned.runtime, "form": b.pruned.form, "median_ms": b.pruned.median_ms}})
    return {"model": args.model, "shape": list(shape), "achieved": selection.achieved.__dict__, "counts": counts,
            "records": records, "speedups": speedups, "best_against_best": best, "skipped": skipped,
            "predicted_ceiling": ceilings}


def predicted_ceilings(models: dict[str, nn.Module], shape: tuple[int, ...], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The roofline's predicted time of each model and predicted ceiling of each pruned one, per
    form whose ops differ (eager; BN folded), at the first batch size: the models and the
    machine's probes are timed in the same rounds (benchmarks/where_time_goes.py), so prediction
    and measurement see the same load. A masked model's ops are the dense model's: left out."""
    batch, rows = args.batches[0], []
    for form in [f for f in (EAGER, FOLDED) if f in args.forms]:
        chosen = {label: deployment_form(m, form) for label, m in models.items() if label != "masked"}
        result = predict_against_measured(chosen, batch, args.threads, args.warmup, args.ceiling_rounds, shape=shape)
        for label, row in result["models"].items():
            per_shape = row["per-shape"]
            rows.append({"model": label, "form": form, "batch_size": batch, "threads": args.threads,
                         "measured_ms": row["measured_ms"], "predicted_ms": per_shape["predicted_ms"],
                         "predicted_over_measured": per_shape["predicted_over_measured"],
                         "predicted_ceiling": per_shape.get("predicted_ceiling"),
                         "measured_speedup": row.get("measured_speedup")})
            ceiling_ = "" if label == "dense" else (f", predicted ceiling {per_shape['predicted_ceiling']:.2f}x, "
                                                   f"measured {row['measured_speedup']:.2f}x")
            print(f"{label:>14} {form:>10} batch {batch}: predicted {per_shape['predicted_ms']:.2f} ms, measured "
                  f"{row['measured_ms']:.2f} ms (predicted / measured {per_shape['predicted_over_measured']:.2f})"
                  f"{ceiling_}", flush=True)
    return rows


# (residual-stream widths, block-inner widths) per stage; dense ResNet-56 is 16/32/64 : 16/32/64.
CEILING_WIDTHS = [
    ((16, 32, 64), (8, 16, 32)),  # what layer-scope l1_filter at 2x keeps (stream whole)
    ((16, 32, 64), (16, 8, 16)),  # stage 1 whole, later stages at a quarter
    ((16, 32, 64), (16, 16, 16)),  # multiples of 16 (one AVX-512 register of float32)
    ((16, 16, 32), (16, 16, 16)),  # stream pruned too, multiples of 16
    ((16, 32, 32), (16, 16, 16)),
    ((8, 16, 32), (16, 32, 64)),  # stream halved, blocks whole
    ((11, 22, 44), (11, 22, 44)),  # every width at 0.7
    ((16, 32, 64), (1, 1, 1)),  # stream whole, blocks all but gone: the most a whole stream allows
]


def resnet56_with_widths(stream: tuple[int, ...], inner: tuple[int, ...]) -> nn.Module:
    """The compact architecture channel pruning would leave: ``stream[s]`` channels on stage s's
    residual stream (the stem and every block's second convolution), ``inner[s]`` between a
    block's two convolutions. Option-A shortcuts pad the narrower stream of the stage before."""
    model = CifarResNet(56, 3, 10, width=stream[0])
    previous = stream[0]
    for stage, (width, planes) in enumerate(zip(stream, inner), start=1):
        for b, block in enumerate(getattr(model, f"layer{stage}")):
            block.conv1 = nn.Conv2d(previous if b == 0 else width, planes, 3, stride=block.conv1.stride, padding=1, bias=False)
            block.bn1 = nn.BatchNorm2d(planes)
            block.conv2 = nn.Conv2d(planes, width, 3, padding=1, bias=False)
            block.bn2 = nn.BatchNorm2d(width)
            if b == 0 and stage > 1:
                block.shortcut = PadShortcut(previous, width)
        previous = width
    model.fc = nn.Linear(previous, 10)
    return model.eval()


def width_grid(dense_macs: int, low: float = 1.9, high: float = 2.3) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every combination of stream widths (8|16, 16|32, 32|48|64) and inner widths (8|16, 8|16|32,
    16|32|64) per stage whose theoretical speedup lies in [low, high]."""
    chosen = []
    for stream in itertools.product((8, 16), (16, 32), (32, 48, 64)):
        for inner in itertools.product((8, 16), (8, 16, 32), (16, 32, 64)):
            if stream[0] <= stream[1] <= stream[2]:
                theory = dense_macs / mac_metrics(resnet56_with_widths(stream, inner), SHAPE).dense_total
                if low <= theory <= high:
                    chosen.append((stream, inner))
    return chosen


def ceiling(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    dense = create_model("resnet-56", SHAPE, 10).eval()
    dense_macs = mac_metrics(dense, SHAPE).dense_total
    widths = width_grid(dense_macs) if args.ceiling == "grid" else CEILING_WIDTHS
    print(f"ceiling: {len(widths)} width structures", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stream, inner in widths:
            small = resnet56_with_widths(stream, inner)
            theory = dense_macs / mac_metrics(small, SHAPE).dense_total
            # The roofline's ceiling for this structure, on rates measured now (metrics/roofline.py).
            dense_ops, small_ops = op_costs(dense, SHAPE, 64), op_costs(small, SHAPE, 64)
            predicted = predicted_ceiling(dense_ops, small_ops, measure_machine(dense_ops + small_ops, args.threads))
            _, paired = time_all({"dense": dense, "compact": small}, 64, args.threads, args.warmup, args.repeats,
                                 None if args.no_onnx else Path(tmp) / "-".join(map(str, stream + inner)),
                                 quiet=True)
            for pair in paired:
                rows.append({"stream": stream, "inner": inner, "theoretical": theory, **pair,
                             "fraction_of_theoretical": pair["paired_median"] / theory, "predicted_ceiling": predicted})
                print(f"ceiling stream {'/'.join(map(str, stream)):>8} inner {'/'.join(map(str, inner)):>8} "
                      f"{pair['runtime']:>12} batch 64 threads {args.threads}: theoretical {theory:.2f}x measured "
                      f"{pair['paired_median']:.2f}x ({pair['paired_median'] / theory:.2f} of theoretical), "
                      f"predicted ceiling {predicted:.2f}x", flush=True)
    return rows


def unstructured(args: argparse.Namespace) -> dict[str, Any]:
    records, rows = [], []
    for sparsity in (0.5, 0.9, 0.99):
        torch.manual_seed(0)
        model = create_model("lenet-300-100", (1, 28, 28), 10).eval()
        with torch.no_grad():
            for layer in model.modules():
                if isinstance(layer, nn.Linear):
                    layer.weight[torch.rand(layer.weight.shape) < sparsity] = 0
        csr = sparse_csr_linears(model)
        for batch in args.batches:
            with torch_threads(args.threads):
                times = interleaved_times({"dense": torch_runner(model, (1, 28, 28), batch),
                                           "csr": torch_runner(csr, (1, 28, 28), batch)}, args.warmup, args.repeats * 4)
            dense, sparse = (summarize(times[k], model=f"{k}-{sparsity:g}", runtime=rt, device=cpu_name(),
                                       dtype="float32", batch_size=batch, threads=args.threads, warmup=args.warmup)
                             for k, rt in (("dense", "torch-eager"), ("csr", "torch-sparse-csr")))
            median, q1, q3 = paired_speedup(times["dense"], times["csr"])
            records += [dense, sparse]
            rows.append({"sparsity": sparsity, "batch_size": batch, "threads": args.threads, "device": dense.device,
                         "dtype": "float32", "dense_ms": dense.median_ms, "csr_ms": sparse.median_ms,
                         "csr_speedup_paired": median, "paired_iqr": [q1, q3]})
            print(rows[-1], flush=True)
    return {"records": [r.to_dict() for r in records], "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    """The tables docs/structured.md shows, from a saved run (``--render FILE``)."""
    part = result["structured"]
    records = {(r["model"], r["runtime"], r["form"], r["batch_size"]): r for r in part["records"]}
    lines = ["| model | runtime | form | batch | median ms (IQR) | theoretical | measured (paired median, IQR) | fraction |",
             "|---|---|---|---|---|---|---|---|"]
    for (model, runtime, form, batch), r in records.items():
        row = next((s for s in part["speedups"] if (s["model"], s["runtime"], s["form"], s["batch_size"])
                    == (model, runtime, form, batch)), None)
        measured = "-" if row is None else (f"{row['measured_paired']:.2f} ({row['paired_iqr'][0]:.2f}-"
                                            f"{row['paired_iqr'][1]:.2f})")
        theory = part["counts"][model]["theoretical_speedup"]
        fraction = "-" if row is None else f"{row['fraction_of_theoretical']:.2f}"
        lines.append(f"| {model} | {runtime} | {form} | {batch} | {r['median_ms']:.2f} ({r['q1_ms']:.2f}-{r['q3_ms']:.2f}) "
                     f"| {theory:.2f} | {measured} | {fraction} |")
    lines += ["", "| model | batch | runtimes | dense, fastest form | pruned, fastest form | theoretical | measured best against best | fraction |",
              "|---|---|---|---|---|---|---|---|"]
    for b in part["best_against_best"]:
        lines.append(f"| {b['model']} | {b['batch_size']} | {b.get('within', 'any')} | {b['dense']['median_ms']:.2f} ms ({b['dense']['runtime']}, "
                     f"{b['dense']['form']}) | {b['pruned']['median_ms']:.2f} ms ({b['pruned']['runtime']}, "
                     f"{b['pruned']['form']}) | {b['theoretical']:.2f} | {b['measured']:.2f} | {b['fraction_of_theoretical']:.2f} |")
    if part.get("predicted_ceiling") and "measured_ms" in part["predicted_ceiling"][0]:  # older runs: single-shot rates
        lines += ["", "| model | form | measured ms | predicted ms | predicted / measured (paired) | measured speedup "
                  "| predicted ceiling |", "|---|---|---|---|---|---|---|"]
        for c in part["predicted_ceiling"]:
            speed = "-" if c["measured_speedup"] is None else f"{c['measured_speedup']:.2f}"
            ceil = "-" if c["predicted_ceiling"] is None else f"{c['predicted_ceiling']:.2f}"
            lines.append(f"| {c['model']} | {c['form']} | {c['measured_ms']:.2f} | {c['predicted_ms']:.2f} "
                         f"| {c['predicted_over_measured']:.2f} | {speed} | {ceil} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--speedup", type=float, default=2.0)
    parser.add_argument("--scope", choices=["global", "layer"], default="layer")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--model", choices=sorted(SHAPES), default="resnet-56")
    parser.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS))
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: ResNet-20 at 3x16x16, batch 4, 3 repeats, no unstructured part, no ceiling")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--skip-unstructured", action="store_true")
    parser.add_argument("--ceiling", nargs="?", const="few", choices=["few", "grid"],
                        help="also time hand-built ResNet-56 widths: CEILING_WIDTHS (few) or width_grid (grid)")
    parser.add_argument("--ceiling-rounds", type=int, default=20,
                        help="rounds of the roofline prediction of the pruned models (0: none)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, metavar="FILE",
                        help="print the markdown tables of a saved run (an --out file) and exit")
    args = parser.parse_args()
    if args.ceiling_rounds < 0:
        parser.error(f"--ceiling-rounds must be 0 (no prediction) or more, got {args.ceiling_rounds}")
    if args.render:
        try:
            saved = json.loads(args.render.read_text())
            tables = markdown(saved)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--render {args.render}: not a saved run of this benchmark ({type(exc).__name__}: {exc})")
        print(tables)
        return
    args.shape = SHAPES[args.model]
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.skip_unstructured, args.ceiling = True, None
    if args.no_onnx:
        args.runtimes = [r for r in args.runtimes if r != ONNX]
    result: dict[str, Any] = {"torch": torch.__version__, "load_average_before": os.getloadavg(),
                              "allocator": steady_allocator(), "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    result["structured"] = structured(args)
    if args.ceiling:
        result["ceiling"] = ceiling(args)
    if not args.skip_unstructured:
        result["unstructured"] = unstructured(args)
    result["load_average_after"] = os.getloadavg()
    for row in result.get("unstructured", {}).get("rows", []):
        print(f"lenet-300-100 {row['sparsity']:.0%} sparse, batch {row['batch_size']}, {row['threads']} threads: "
              f"dense {row['dense_ms']:.3f} ms, CSR {row['csr_ms']:.3f} ms, CSR speedup {row['csr_speedup_paired']:.2f}x")
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    for row in result["structured"]["speedups"]:
        print(f"{row['model']:>14} {row['runtime']:>13} {row['form']:>23} batch {row['batch_size']:>3} "
              f"threads {row['threads']}: theoretical {row['theoretical']:.2f}x measured {row['measured_paired']:.2f}x "
              f"(IQR {row['paired_iqr'][0]:.2f}-{row['paired_iqr'][1]:.2f}; ratio of medians "
              f"{row['measured_median_ratio']:.2f}; of minima {row['measured_min_ratio']:.2f}) "
              f"({row['fraction_of_theoretical']:.2f} of theoretical)")
    for row in result["structured"]["best_against_best"]:
        print(f"{row['model']:>14} best against best ({row['within']}), batch {row['batch_size']:>3}: dense "
              f"{row['dense']['median_ms']:.3f} ms ({row['dense']['runtime']}, {row['dense']['form']}), pruned "
              f"{row['pruned']['median_ms']:.3f} ms ({row['pruned']['runtime']}, {row['pruned']['form']}): "
              f"theoretical {row['theoretical']:.2f}x measured {row['measured']:.2f}x "
              f"({row['fraction_of_theoretical']:.2f} of theoretical)")
    for row in result["structured"]["skipped"]:
        print(f"skipped: {row['runtime']} / {row['form']} at batch {row['batch_size']}: {row['reason']}")


if __name__ == "__main__":
    main()
