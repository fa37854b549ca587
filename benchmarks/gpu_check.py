"""GPU check: CIFAR-10 ResNet-20 at published accuracy, a one-seed pruning comparison, CUDA latency and 2:4 speed.

    python benchmarks/gpu_check.py --data-dir DATA              # one CUDA GPU; planned to fit 8 minutes on an H100
    python benchmarks/gpu_check.py --dry-run --out check.json   # the same logic on the CPU at tiny sizes

One JSON file (``--out``, default ``$OUT/gpu_check.json``) holds every figure, the device (name,
torch, CUDA and cuDNN versions) and the wall time of each part:

- ``data``: one epoch's batches cut on the host path and on the device path
  (:mod:`prunebench.data.device_batches`), compared tensor for tensor on the GPU, and one
  training epoch through each, timed.
- ``comparison``: the dense ResNet-20 trained with the fast recipe below (target: 91% test
  top-1 or more), then from that checkpoint, one seed: global ``magnitude`` at compression 4 and
  16 and ``l1_filter`` at 2x theoretical speedup, each with its random control (``random``,
  ``random_channel``), each fine-tuned under one recipe; all through ``run_experiment``.
- ``latency``: the dense model and the compacted ``l1_filter`` and ``random_channel`` models,
  eager and ``torch.compile``d, float32 and bfloat16, timed with CUDA events (median and quartiles).
- ``sparse``: 2:4 semi-structured sparse (``torch.sparse.to_sparse_semi_structured``) against
  dense for every linear shape of a SmolLM2-135M block at 8 x 512 tokens, and a whole prefill of
  batch 8 x 512 tokens, in float16 and bfloat16. The model is SmolLM2-135M's architecture (its
  configuration) with seeded random weights pruned 2:4 by magnitude: kernel speed depends on
  shapes and the 2:4 pattern, not on the weights' values, and the GGUF file (larger than what
  travels to an offline GPU machine in one command) is not needed.
- ``modes`` (only with ``--parts``): two epochs per training mode (fp32, bf16, fp16,
  channels-last, compile) from one initialization.

The fast recipe (dense): 80 epochs of SGD with Nesterov momentum 0.9, batch 500, lr 0.2 on a
cosine schedule, weight decay 5e-4, padded crop and flip, bf16 autocast, channels-last,
``torch.compile``; fine-tuning: 15 epochs at lr 0.02, the same otherwise but not compiled (each
compacted architecture would compile anew). What makes it fast is taken from the published fast
CIFAR-10 trainers, as techniques, not code: the dataset held on the GPU as uint8 and augmented
there with no DataLoader, large batches with Nesterov SGD, half-precision and channels-last
convolutions, and a compiled step (K. Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single
GPU", arXiv:2404.00498, 2024, the airbench trainers; D. Page, "How to Train Your ResNet",
Myrtle.ai, 2018); the cosine schedule is Loshchilov & Hutter, "SGDR", ICLR 2017. Their other
techniques (label smoothing, lookahead, whitened first layer, test-time augmentation) change the
model, the loss or the evaluation, so prunebench's ResNet-20 and its evaluation are kept as they
are. ResNet-20's published test top-1 is 91.25% (He et al. 2016, 164 epochs on 50,000 images);
this recipe trains on the 45,000 left after the validation split. Batch 500 divides 45,000, so
the compiled step sees one batch shape.

``--dry-run`` runs every part on the CPU with one thread at tiny sizes (128 random images or the
registered ``synthetic`` dataset, 2 steps an epoch, a 2-block SmolLM2-shaped model, linear
shapes divided by 8), training in float32 and with ``torch.compile`` off; the 2:4 kernels, which exist only on CUDA, are
recorded as skipped with the reason. Its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks import common  # noqa: E402,F401  (puts src/ on the path first)
from prunebench import ConfigError, DataError, DataSplits, ExperimentSpec, PruneSpec, RunSettings, TrainSpec  # noqa: E402
from prunebench import create_model, load_dataset, run_experiment  # noqa: E402
from prunebench.data import batches, default_data_dir  # noqa: E402
from prunebench.data.augment import random_crop_flip  # noqa: E402
from prunebench.data.device_batches import device_batches, plan_epoch  # noqa: E402
from prunebench.metrics import evaluate  # noqa: E402
from prunebench.metrics.latency import LatencyRecord, summarize, time_torch  # noqa: E402
from prunebench.pruning.channels import layers_matching  # noqa: E402
from prunebench.pruning.compact import compact  # noqa: E402
from prunebench.pruning.mask import Mask  # noqa: E402
from prunebench.store.artifacts import load_tensors  # noqa: E402
from prunebench.store.layout import DENSE_DIR, MASK_FILE, MODEL_FILE, run_folder  # noqa: E402
from prunebench.train import train  # noqa: E402
from prunebench.train.batches import epoch_steps  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SEED = 0
TARGET_TOP1 = 0.91
BUDGET_S = 8 * 60
PARTS = ("data", "modes", "comparison", "latency", "sparse")
DEFAULT_PARTS = ("data", "comparison", "latency", "sparse")
MODES: dict[str, dict[str, object]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp16": {"precision": "fp16"},
    "channels-last": {"channels_last": True},
    "compile": {"compile": True},
}
# (strategy, structure, target kind, target value); each method is followed by its random control (CONTROLS)
PRUNINGS = (
    ("magnitude", "unstructured", "compression", 4.0),
    ("random", "unstructured", "compression", 4.0),
    ("magnitude", "unstructured", "compression", 16.0),
    ("random", "unstructured", "compression", 16.0),
    ("l1_filter", "channel", "speedup", 2.0),
    ("random_channel", "channel", "speedup", 2.0),
)
CONTROLS = {"magnitude": "random", "l1_filter": "random_channel"}
COMPACTED = ("l1_filter", "random_channel")
# SmolLM2-135M (HuggingFaceTB/SmolLM2-135M config.json): the shapes its kernels see
SMOLLM2 = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
           "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True}
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Sizes:
    examples: int | None  # training examples (None: all 45,000 left after the validation split)
    dense_epochs: int
    finetune_epochs: int
    batch_size: int
    max_steps: int | None  # per epoch
    precision: str  # of training: bf16 on the GPU; fp32 in the dry run (CPU bf16 convolutions are slow)
    compile: bool
    latency_batch: int
    latency_repeats: int
    lm_layers: int
    lm_divisor: int  # linear shapes and model widths divided by this
    lm_batch: int
    lm_seq: int
    lm_repeats: int


FULL = Sizes(examples=None, dense_epochs=80, finetune_epochs=15, batch_size=500, max_steps=None, precision="bf16", compile=True,
             latency_batch=256, latency_repeats=50, lm_layers=30, lm_divisor=1, lm_batch=8, lm_seq=512, lm_repeats=20)
DRY = Sizes(examples=128, dense_epochs=1, finetune_epochs=1, batch_size=16, max_steps=2, precision="fp32", compile=False,
            latency_batch=4, latency_repeats=3, lm_layers=2, lm_divisor=8, lm_batch=2, lm_seq=16, lm_repeats=3)


def dense_recipe(sizes: Sizes) -> TrainSpec:
    return TrainSpec(
        epochs=sizes.dense_epochs, optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
        batch_size=sizes.batch_size, lr_schedule="cosine", augment="crop-flip", max_steps_per_epoch=sizes.max_steps,
        precision=sizes.precision, channels_last=True, compile=sizes.compile,
    )


def finetune_recipe(sizes: Sizes) -> TrainSpec:
    return replace_spec(dense_recipe(sizes), epochs=sizes.finetune_epochs, lr=0.02, compile=False)


def replace_spec(spec: TrainSpec, **changes: Any) -> TrainSpec:
    return TrainSpec(**{**spec.model_dump(), **changes})


def default_data() -> Path:
    """This project's shared data folder beside the clone where there is one, else prunebench's default."""
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else default_data_dir()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(part: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    return part(), time.perf_counter() - start


def environment(device: torch.device, dry_run: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "dry_run": dry_run, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"device": torch.cuda.get_device_name(device), "capability": f"{props.major}.{props.minor}",
                 "gpu_memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count}
    else:
        info["device"] = f"CPU ({platform.processor() or platform.machine()}), dry run"
    return info


def cifar_or_random(data_dir: Path | None, sizes: Sizes, device: torch.device) -> tuple[DataSplits, str]:
    """CIFAR-10 when ``data_dir`` has it, else random uint8-like tensors of its shape; and which it is."""
    try:
        if data_dir is None:
            raise DataError("a dry run decodes no dataset")
        data, source = load_dataset("cifar10", data_dir=data_dir, download=False, subset=sizes.examples), "CIFAR-10"
    except DataError:
        n = sizes.examples or 45_000
        generator = torch.Generator().manual_seed(SEED)
        images = torch.randn(n + n // 10, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 10, (n + n // 10,), generator=generator)
        data = DataSplits.from_tensors(train=(images[:n], labels[:n]), test=(images[n:], labels[n:]))
        source = "random tensors of CIFAR-10's shape"
    return data.to(device), source


# --- data: the device path against the host path -------------------------------------------------


def data_part(data: DataSplits, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """Every batch of one epoch on both paths compared, then one training epoch on each, timed."""
    n, spec = data.train_x.shape[0], dense_recipe(sizes)
    steps = epoch_steps(n, spec)
    host_gen, device_gen = torch.Generator().manual_seed(SEED), torch.Generator().manual_seed(SEED)
    order = torch.randperm(n, generator=host_gen).to(device)
    keys = [order[s : s + spec.batch_size] for s in range(0, steps * spec.batch_size, spec.batch_size)]
    plan = plan_epoch(device_gen, n, spec.batch_size, steps, augment=True).to(device)
    compared = identical = 0
    for (host_x, host_y), (dev_x, dev_y) in zip(batches(data.train_x, data.train_y, keys),
                                                device_batches(data.train_x, data.train_y, plan, spec.batch_size, steps)):
        host_x = random_crop_flip(host_x, host_gen)
        compared += 1
        identical += int(torch.equal(host_x, dev_x) and torch.equal(host_y, dev_y))
    torch.manual_seed(SEED)
    initial = create_model("resnet-20", data.input_shape, data.num_classes).state_dict()
    epoch = replace_spec(spec, epochs=1, compile=False)
    seconds = {}
    for path in ("host", "device", "host", "device"):  # twice each, in turns: the first pays for warm-up
        model = create_model("resnet-20", data.input_shape, data.num_classes).to(device)
        model.load_state_dict(initial)
        synchronize(device)
        start = time.perf_counter()
        train(model, data, epoch, seed=SEED, stage=f"{path} path", data_path=path)  # type: ignore[arg-type]
        synchronize(device)
        seconds[path] = time.perf_counter() - start  # the second of each pair is kept
    return {
        "batches_compared": compared, "batches_identical": identical,
        "epoch_recipe": f"the dense recipe, 1 epoch, eager ({epoch.precision}, channels-last)",
        "host_epoch_s": seconds["host"], "device_epoch_s": seconds["device"],
        "speedup": seconds["host"] / seconds["device"],
    }


# --- modes: the existing training-mode table ------------------------------------------------------


def modes_part(data: DataSplits, sizes: Sizes, device: torch.device) -> list[dict[str, Any]]:
    """Two epochs of ResNet-20 per mode from the same initial weights: seconds for each, validation top-1."""
    torch.manual_seed(SEED)
    initial = create_model("resnet-20", data.input_shape, data.num_classes).state_dict()
    rows = []
    for label, mode in MODES.items():
        model = create_model("resnet-20", data.input_shape, data.num_classes).to(device)
        model.load_state_dict(initial)
        spec = TrainSpec(epochs=1, lr=0.1, batch_size=128 if sizes is FULL else sizes.batch_size,
                         max_steps_per_epoch=sizes.max_steps, **mode)  # type: ignore[arg-type]
        seconds = []
        for epoch in range(2):  # the first pays for warm-up (cuDNN autotuning, compilation)
            synchronize(device)
            start = time.perf_counter()
            train(model, data, spec, seed=SEED + epoch, stage=label)
            synchronize(device)
            seconds.append(time.perf_counter() - start)
        top1 = evaluate(model, data.val_x, data.val_y).top1 if data.val_x.shape[0] else float("nan")
        rows.append({"mode": label, "first_epoch_s": seconds[0], "epoch_s": seconds[1], "val_top1": top1})
    for row in rows:
        row["speedup_vs_fp32"] = rows[0]["epoch_s"] / row["epoch_s"]
    return rows


# --- comparison: dense to 91%, then the one-seed comparison -------------------------------------


def comparison_specs(dataset: str, sizes: Sizes) -> list[ExperimentSpec]:
    return [
        ExperimentSpec(
            dataset=dataset, model="resnet-20", seed=SEED, subset=sizes.examples,
            train=dense_recipe(sizes), finetune=finetune_recipe(sizes),
            prune=PruneSpec(strategy=strategy, structure=structure, scope="global" if structure == "unstructured" else "layer",
                            **{kind: value}),  # type: ignore[arg-type]
        )
        for strategy, structure, kind, value in PRUNINGS
    ]


def comparison_part(dataset: str, data_dir: Path | None, sizes: Sizes, device: str, results: Path) -> dict[str, Any]:
    """Every pruning of PRUNINGS through the run pipeline; the first run trains the shared dense model."""
    settings = RunSettings(data_dir=data_dir, download=False, device=device, threads=1 if device == "cpu" else None)
    rows, dense = [], None
    for spec in comparison_specs(dataset, sizes):
        result, seconds = timed(lambda spec=spec: run_experiment(spec, settings, results))
        accuracy = result.accuracy
        if dense is None:
            dense = {"test_top1": accuracy.dense_top1, "test_top5": accuracy.dense_top5,
                     "val_top1": accuracy.dense_val_top1, "train_s": result.timings.dense_train,
                     "recipe": spec.train.model_dump(mode="json"), "examples": sizes.examples or 45_000}
            dense["reached_target"] = dense["test_top1"] >= TARGET_TOP1 if dataset == "cifar10" else None
        rows.append({
            "strategy": spec.prune.strategy, "structure": spec.prune.structure,
            "control_of": next((m for m, c in CONTROLS.items() if c == spec.prune.strategy), None),
            "target": result.target.model_dump(mode="json") if result.target else None,
            "top1": accuracy.top1, "top5": accuracy.top5, "pre_retrain_top1": accuracy.pre_retrain_top1,
            "compression": result.sizes.compression_ratio, "theoretical_speedup": result.macs.theoretical_speedup,
            "finetune_s": result.timings.retrain, "wall_s": seconds, "run_id": result.run_id,
        })
    return {"dataset": dataset, "seed": SEED, "dense": dense, "finetune_recipe": finetune_recipe(sizes).model_dump(mode="json"),
            "runs": rows}


# --- latency: dense against compacted, eager and compiled, CUDA events ---------------------------


def cuda_event_latency(model: nn.Module, label: str, input_shape: tuple[int, ...], sizes: Sizes, device: torch.device,
                       dtype: torch.dtype, compiled: bool) -> LatencyRecord:
    """Median of CUDA-event times of the eval forward (wall clock on the CPU), after warm-up."""
    runner: nn.Module = torch.compile(model) if compiled else model  # type: ignore[assignment]
    runtime = ("torch-compile" if compiled else "torch-eager") + ("-cuda" if device.type == "cuda" else "")
    return time_torch(runner, input_shape, sizes.latency_batch, label=label, warmup=10 if compiled else 5,
                      repeats=sizes.latency_repeats, device=device, dtype=dtype, runtime=runtime)


def latency_part(dataset: str, comparison: dict[str, Any], sizes: Sizes, device: torch.device, results: Path,
                 data: DataSplits) -> dict[str, Any]:
    """The dense checkpoint and each compacted model of COMPACTED, in float32 and bfloat16, eager and compiled."""
    specs = {s.prune.strategy: s for s in comparison_specs(dataset, sizes) if s.prune.strategy in COMPACTED}
    first = next(iter(specs.values()))
    dense = create_model("resnet-20", data.input_shape, data.num_classes)
    dense.load_state_dict(load_tensors(results / DENSE_DIR / first.dense_spec().content_hash() / MODEL_FILE))
    models: dict[str, nn.Module] = {"dense": dense}
    for strategy, spec in specs.items():
        run = next(r for r in comparison["runs"] if r["strategy"] == strategy)
        folder = run_folder(results, run["run_id"])
        pruned = create_model("resnet-20", data.input_shape, data.num_classes)
        pruned.load_state_dict(load_tensors(folder / MODEL_FILE))
        exclude = layers_matching(pruned, spec.prune.prunable.exclude)
        models[strategy] = compact(pruned, Mask(load_tensors(folder / MASK_FILE)), data.input_shape, exclude)
    rows = []
    for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        for compiled in (False, True):
            if compiled and not sizes.compile:
                rows += [{"model": label, "dtype": dtype_name, "compiled": True, "skipped": "dry run: compile off"}
                         for label in models]
                continue
            for label, model in models.items():
                moved = model.to(device=device, dtype=dtype)
                record = cuda_event_latency(moved, label, data.input_shape, sizes, device, dtype, compiled)
                rows.append({"model": label, "dtype": dtype_name, "compiled": compiled, **asdict(record),
                             "params": sum(p.numel() for p in model.parameters())})
    for row in rows:  # speedup of each compacted model over the dense one in the same dtype and form
        dense_row = next(r for r in rows if r["model"] == "dense" and r["dtype"] == row["dtype"] and r["compiled"] == row["compiled"])
        if "median_ms" in row:
            row["speedup_vs_dense"] = dense_row["median_ms"] / row["median_ms"]
    return {"batch_size": sizes.latency_batch, "timer": "CUDA events" if device.type == "cuda" else "wall clock (CPU)",
            "rows": rows}


# --- sparse: 2:4 semi-structured against dense, SmolLM2-135M's shapes -----------------------------


def two_four(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` with the 2 smallest-magnitude entries of every 4 consecutive inputs set to zero."""
    groups = weight.reshape(weight.shape[0], -1, 4)
    drop = groups.abs().argsort(dim=-1)[..., :2]
    return groups.scatter(-1, drop, 0).reshape(weight.shape)


def linear_shapes(sizes: Sizes) -> dict[str, tuple[int, int]]:
    """(out, in) of each linear layer of one SmolLM2-135M block."""
    d, inter = SMOLLM2["hidden_size"] // sizes.lm_divisor, SMOLLM2["intermediate_size"] // sizes.lm_divisor
    kv = d * SMOLLM2["num_key_value_heads"] // SMOLLM2["num_attention_heads"]
    return {"q_proj": (d, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, d),
            "gate_proj": (inter, d), "up_proj": (inter, d), "down_proj": (d, inter)}


def event_times(run: Callable[[], object], repeats: int, device: torch.device, warmup: int = 5) -> list[float]:
    """Milliseconds of ``run`` per repeat: CUDA events on a GPU, the wall clock on the CPU."""
    for _ in range(warmup):
        run()
    times = []
    synchronize(device)
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            run()
            times.append((time.perf_counter() - began) * 1000)
    return times


def semi_structured(weight: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
    """The 2:4 weight as torch's semi-structured sparse tensor, or None and why not."""
    if weight.device.type != "cuda":
        return None, "2:4 semi-structured kernels exist only on CUDA (compute capability 8.0 or newer)"
    from torch.sparse import to_sparse_semi_structured

    try:
        return to_sparse_semi_structured(weight), None
    except (RuntimeError, ValueError) as exc:
        return None, str(exc).splitlines()[0]


def spread(times: list[float]) -> dict[str, float]:
    record = summarize(times, model="", runtime="", device="", dtype="", batch_size=0, threads=0, warmup=0)
    return {"median_ms": record.median_ms, "q1_ms": record.q1_ms, "q3_ms": record.q3_ms}


def linears_part(sizes: Sizes, device: torch.device) -> list[dict[str, Any]]:
    tokens = sizes.lm_batch * sizes.lm_seq
    generator = torch.Generator().manual_seed(SEED)
    rows = []
    for dtype_name, dtype in DTYPES.items():
        for name, (out_features, in_features) in linear_shapes(sizes).items():
            weight = two_four(torch.randn(out_features, in_features, generator=generator)).to(device, dtype)
            x = torch.randn(tokens, in_features, generator=generator).to(device, dtype)
            row: dict[str, Any] = {"layer": name, "shape": [out_features, in_features], "tokens": tokens, "dtype": dtype_name}
            with torch.inference_mode():
                dense = spread(event_times(lambda: nn.functional.linear(x, weight), sizes.lm_repeats, device))
                row["dense"] = dense
                sparse_weight, why = semi_structured(weight)
                if sparse_weight is None:
                    row["skipped"] = why
                else:
                    sparse_run = lambda: nn.functional.linear(x, sparse_weight)  # noqa: E731
                    try:
                        expected = nn.functional.linear(x, weight).float()
                        row["max_abs_error"] = float((sparse_run().float() - expected).abs().max())
                        row["sparse"] = spread(event_times(sparse_run, sizes.lm_repeats, device))
                        row["speedup"] = dense["median_ms"] / row["sparse"]["median_ms"]
                    except RuntimeError as exc:  # a shape or dtype the kernels refuse: said, not fatal
                        row["skipped"] = str(exc).splitlines()[0]
            rows.append(row)
    return rows


def smollm2_shaped(sizes: Sizes) -> nn.Module:
    """SmolLM2-135M's architecture (depth and widths divided as ``sizes`` says) with seeded random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(SMOLLM2)
    for key in ("hidden_size", "intermediate_size"):
        settings[key] //= sizes.lm_divisor
    settings["num_hidden_layers"] = sizes.lm_layers
    if sizes.lm_divisor > 1:
        settings["vocab_size"] = 1024
        settings["num_attention_heads"], settings["num_key_value_heads"] = 3, 1  # head_dim 24 at width 72
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return LlamaForCausalLM(LlamaConfig(**settings)).eval()


def prefill_part(sizes: Sizes, device: torch.device) -> list[dict[str, Any]]:
    """Dense against 2:4 (every block linear; embeddings and the tied head stay dense), per dtype."""
    from prunebench.metrics.lm_latency import prefill_speed, semi_structured_speed

    dense = smollm2_shaped(sizes)
    pruned = smollm2_shaped(sizes)
    with torch.no_grad():
        for name, module in pruned.named_modules():
            if isinstance(module, nn.Linear) and name != "lm_head":
                module.weight.copy_(two_four(module.weight))
    rows = []
    for dtype_name, dtype in DTYPES.items():
        row: dict[str, Any] = {"dtype": dtype_name, "batch": sizes.lm_batch, "seq_len": sizes.lm_seq,
                               "layers": sizes.lm_layers}
        if device.type == "cuda":
            try:
                comparison = semi_structured_speed(dense, pruned, batch_size=sizes.lm_batch, seq_len=sizes.lm_seq,
                                                   repeats=sizes.lm_repeats, dtype=dtype)
            except (RuntimeError, ConfigError) as exc:
                comparison, row["skipped"] = None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        else:  # the CPU has no 2:4 kernels: the masked model on dense kernels, and the reason
            comparison = prefill_speed(dense.to(dtype), pruned.to(dtype), batch_size=sizes.lm_batch, seq_len=sizes.lm_seq,
                                       repeats=sizes.lm_repeats, warmup=1, dtype=dtype, threads=1)
            row["skipped"] = "2:4 semi-structured kernels exist only on CUDA: the 2:4-masked model ran on dense kernels"
        if comparison is not None:
            row |= {"dense": comparison.dense.to_dict(), "pruned": comparison.pruned.to_dict(),
                    "speedup": comparison.speedup, "speedup_iqr": [comparison.speedup_q1, comparison.speedup_q3],
                    "timer": "wall clock around synchronized passes, in turns (prunebench.metrics.lm_latency)"}
        rows.append(row)
    return rows


def sparse_part(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"model": "SmolLM2-135M architecture, seeded random weights pruned 2:4 by magnitude"}
    if device.type == "cuda":
        info["cusparselt"] = bool(getattr(torch.backends, "cusparselt", None) and torch.backends.cusparselt.is_available())
    info["linears"], info["linears_s"] = timed(lambda: linears_part(sizes, device))
    try:
        info["prefill"], info["prefill_s"] = timed(lambda: prefill_part(sizes, device))
    except ImportError as exc:
        info["prefill"] = [{"skipped": f"needs transformers ({exc})"}]
    return info


# --- the script ----------------------------------------------------------------------------------


def summary(report: dict[str, Any]) -> str:
    """A few lines to read at a glance; the JSON holds everything."""
    lines = [f"{report['environment']['device']}, torch {report['environment']['torch']}, CUDA {report['environment']['cuda']}"]
    parts = report["parts"]
    if "data" in parts:
        d = parts["data"]
        lines.append(f"data: {d['batches_identical']}/{d['batches_compared']} batches identical; epoch host "
                     f"{d['host_epoch_s']:.2f} s, device {d['device_epoch_s']:.2f} s")
    if "comparison" in parts:
        c = parts["comparison"]
        lines.append(f"dense: test top-1 {c['dense']['test_top1']:.2%} in {c['dense']['train_s']:.0f} s")
        lines += [f"  {r['strategy']:>15} {r['structure']:>12} top-1 {r['top1']:.2%}  compression {r['compression']:.2f}x  "
                  f"theoretical {r['theoretical_speedup']:.2f}x" for r in c["runs"]]
    if "latency" in parts:  # (a failed comparison leaves latency failed too: it times its models)
        lines += [f"latency {r['model']:>15} {r['dtype']:>8} {'compiled' if r['compiled'] else 'eager':>8}: "
                  + (f"{r['median_ms']:.3f} ms ({r['speedup_vs_dense']:.2f}x)" if "median_ms" in r else r["skipped"])
                  for r in parts["latency"]["rows"]]
    if "sparse" in parts:
        lines += [f"2:4 {r['layer']:>9} {r['dtype']:>8}: " + (f"{r['speedup']:.2f}x" if "speedup" in r else "dense only")
                  for r in parts["sparse"]["linears"]]
    lines += [f"{name}: {seconds:.1f} s" for name, seconds in report["wall_s"].items()]
    return "\n".join(lines) + "\n"


def parse_parts(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PARTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown part {unknown[0]!r}" if unknown else "no part given")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same logic on the CPU at tiny sizes")
    parser.add_argument("--data-dir", type=Path, default=default_data(),
                        help="the folder holding cifar-10/ (downloaded there when missing and a network answers)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_check.json", help="the JSON file")
    parser.add_argument("--results", type=Path, help="results folder for the runs (default: a temporary one)")
    parser.add_argument("--parts", type=parse_parts, default=DEFAULT_PARTS, help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--dense-epochs", type=int, help="dense epochs of the fast recipe (default 80)")
    parser.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs (default 15)")
    args = parser.parse_args(argv)
    started = time.perf_counter()  # the budget counts everything from here, the data check included
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU (--dry-run checks the logic on the CPU)", file=sys.stderr)
        return 1
    if "latency" in args.parts and "comparison" not in args.parts:
        parser.error("--parts: latency times the comparison's compacted models, so it needs comparison too")
    device, sizes = (torch.device("cpu"), DRY) if args.dry_run else (torch.device("cuda"), FULL)
    for flag, field in (("dense_epochs", "dense_epochs"), ("finetune_epochs", "finetune_epochs")):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                parser.error(f"--{flag.replace('_', '-')}: {value} is not a positive number of epochs")
            sizes = replace(sizes, **{field: value})
    data_dir = None if args.dry_run else args.data_dir  # a dry run decodes no dataset
    if not args.dry_run and {"data", "modes", "comparison"} & set(args.parts):
        try:  # the normal path: found in --data-dir, or downloaded there and checked
            load_dataset("cifar10", data_dir=data_dir, download=True)
        except DataError as exc:
            print(f"gpu_check: error: --data-dir: {exc} (offline: scripts/join_parts.py, docs/benchmarks.md#gpu)",
                  file=sys.stderr)
            return 2
    threads = torch.get_num_threads()
    if args.dry_run:
        torch.set_num_threads(1)
    report: dict[str, Any] = {"environment": environment(device, args.dry_run), "budget_s": BUDGET_S,
                              "sizes": asdict(sizes), "parts": {}, "failed": {}, "wall_s": {}}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            results = args.results or Path(scratch)
            dataset = "synthetic" if args.dry_run else "cifar10"  # the dry run's comparison decodes nothing
            if {"data", "modes"} & set(args.parts):
                (data, source), report["wall_s"]["load"] = timed(lambda: cifar_or_random(data_dir, sizes, device))
                report["data_source"] = source
            parts: dict[str, Callable[[], Any]] = {
                "data": lambda: data_part(data, sizes, device),
                "modes": lambda: modes_part(data, sizes, device),
                "comparison": lambda: comparison_part(dataset, data_dir, sizes, device.type, results),
                "latency": lambda: latency_part(
                    dataset, report["parts"]["comparison"], sizes, device, results,
                    load_dataset(dataset, data_dir=data_dir, download=False, subset=sizes.examples)),
                "sparse": lambda: sparse_part(sizes, device),
            }
            for part in (p for p in PARTS if p in args.parts):  # latency after the comparison it times
                try:
                    report["parts"][part], report["wall_s"][part] = timed(parts[part])
                except Exception as exc:  # noqa: BLE001  (one failing part must not lose the others' figures)
                    report["failed"][part] = f"{type(exc).__name__}: {exc}"
                    print(f"gpu_check: part {part} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
    report["wall_s"]["total"] = time.perf_counter() - started
    report["within_budget"] = report["wall_s"]["total"] <= BUDGET_S
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(summary(report), end="")
    print(f"written: {args.out}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
