"""Measured latency: the median of many timed repeats after warm-up, with everything that
changes the number recorded (batch size, threads, runtime, deployment form, device, dtype).

Runtimes: torch eager on CPU (wall clock, ``torch.set_num_threads``), torch eager on CUDA
(CUDA events around each repeat), torch.compile (inductor, CPU or CUDA), and ONNX Runtime at
its highest graph-optimization level on an exported model (optional extra:
``pip install prunebench[onnx]``). Forms (:mod:`prunebench.models.deploy`): the eager eval
model, BN folded into the convolutions, and folded + channels-last. :func:`time_forms` times
models in every requested form x runtime. For unstructured masks, :func:`sparse_csr_linears`
swaps Linear layers for torch's sparse CSR kernels, so one can see where sparse storage pays
and where it is slower than dense.

Measured speedup = dense latency / pruned latency, only between records measured the same way
(same runtime and form); :func:`best_against_best` compares each model in its own fastest form.

CPU timing first calls :func:`steady_allocator`: with glibc's default settings a forward pass
pays page faults for every activation above the adaptive mmap threshold, and that cost depends
on the process's allocation history, so the same model timed in two processes could differ by
a factor of two (ResNet-56, batch 64, measured in ``docs/structured.md``).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.latency_names import COMPILE, ONNX, TORCH  # the names' one definition
from prunebench.latency_names import LATENCY_RUNTIMES as RUNTIMES
from prunebench.errors import ConfigError
from prunebench.models.deploy import EAGER, FOLDED_CHANNELS_LAST, check_form, deployment_form, prepare_input

ONNX_HINT = "pip install 'prunebench[onnx]'"
# How a form is run: torch (eager; recorded as torch-eager on CPU, torch-cuda on CUDA),
# torch.compile with inductor, ONNX Runtime (CPU) with ORT_ENABLE_ALL.


@dataclass(frozen=True)
class LatencyRecord:
    """One latency measurement; milliseconds per batch."""

    model: str  # what was timed, e.g. "dense", "masked", "compact"
    runtime: str  # "torch-eager", "torch-cuda", "torch-compile", "onnxruntime", "torch-sparse-csr"
    device: str
    dtype: str
    batch_size: int
    threads: int
    warmup: int
    repeats: int
    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    allocator: str = ""  # CPU memory allocator setting (see steady_allocator); "" where not applicable
    form: str = EAGER  # deployment form (prunebench.models.deploy.FORMS); records before forms were eager

    @property
    def spread_ms(self) -> float:
        """Interquartile range."""
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.model}: {self.median_ms:.3f} ms median (IQR {self.spread_ms:.3f}) "
                f"[{self.runtime}, {self.form}, {self.device}, {self.dtype}, batch {self.batch_size}, "
                f"{self.threads} threads, {self.repeats} repeats]")


def summarize(times_ms: list[float], **fields: Any) -> LatencyRecord:
    quartiles = statistics.quantiles(times_ms, n=4) if len(times_ms) > 1 else [times_ms[0]] * 3
    return LatencyRecord(
        median_ms=statistics.median(times_ms), q1_ms=quartiles[0], q3_ms=quartiles[2],
        min_ms=min(times_ms), max_ms=max(times_ms), repeats=len(times_ms), **fields,
    )


def check_counts(warmup: int, repeats: int, batch_size: int) -> None:
    if warmup < 0:
        raise ConfigError(f"latency warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ConfigError(f"latency_repeats must be >= 1, got {repeats}")
    if batch_size < 1:
        raise ConfigError(f"latency_batch_size must be >= 1, got {batch_size}")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (None: leave as is), restoring the old count."""
    old = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
PRELOADED_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


@functools.cache
def steady_allocator() -> str:
    """Make CPU forward passes reuse freed activation memory, and say which allocator is used.

    glibc serves large blocks with fresh mmap'd pages and unmaps them on free, so every forward
    pass pays page faults in proportion to its activation sizes, and its adaptive threshold
    makes that cost depend on what the process allocated before. With mmap off and a high
    trim threshold, freed blocks stay in the heap and later passes reuse them: the timing
    measures the model, not the kernel's page-fault path. This is process-wide (the heap no
    longer shrinks below its peak) and done once. An allocator preloaded with ``LD_PRELOAD``
    (jemalloc, tcmalloc, mimalloc) is left alone; other C libraries are left alone; so is
    glibc when the environment sets ``PRUNEBENCH_STEADY_ALLOCATOR=0``.
    Returns "glibc-steady", "glibc", the preloaded allocator's name, or "system".
    """
    preload = os.environ.get("LD_PRELOAD", "")
    for name in PRELOADED_ALLOCATORS:
        if name in preload:
            return name
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "system"
    if os.environ.get("PRUNEBENCH_STEADY_ALLOCATOR", "1") == "0":
        return "glibc"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "system"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return "glibc-steady" if done else "glibc"


def cpu_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def time_torch(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int,
    *,
    label: str,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    runtime: str | None = None,
) -> LatencyRecord:
    """Time ``model``'s eval-mode forward pass on one random batch.

    On CPU each repeat is wall-clock time; on CUDA it is the time between two CUDA events
    recorded around the forward pass (then synchronized), so host overhead outside the
    pass is not counted. A model not yet on ``device``/``dtype`` is timed as a moved copy;
    the model's train/eval mode is restored afterwards.
    """
    check_counts(warmup, repeats, batch_size)
    device = torch.device(device)
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device != device or (t.is_floating_point() and t.dtype != dtype) for t in tensors):
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        return timed_forward(model, input_shape, batch_size, label, threads, warmup, repeats, device, dtype, runtime)
    finally:
        model.train(was_training)


def timed_forward(model: nn.Module, input_shape: tuple[int, ...], batch_size: int, label: str,
                  threads: int | None, warmup: int, repeats: int, device: torch.device,
                  dtype: torch.dtype, runtime: str | None) -> LatencyRecord:
    default_runtime, allocator = torch_runtime(device)
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    times: list[float] = []
    with torch_threads(threads) as used, torch.inference_mode():
        run: Callable[[], object] = lambda: model(x)  # noqa: E731
        for _ in range(warmup):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            name = f"{device} ({torch.cuda.get_device_name(device)})"
        else:
            for _ in range(repeats):
                start_s = time.perf_counter()
                run()
                times.append((time.perf_counter() - start_s) * 1000.0)
            name = cpu_name()
    return summarize(
        times, model=label, runtime=runtime or default_runtime,
        device=name, dtype=str(dtype).removeprefix("torch."), batch_size=batch_size,
        threads=used, warmup=warmup, allocator=allocator,
    )


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX Runtime latency needs onnx and onnxruntime, which are not installed: {ONNX_HINT}") from None
    return onnxruntime


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, dynamo: bool = True) -> Path:
    """Export ``model`` (eval mode, float32, CPU) to ONNX with a dynamic batch dimension.

    Uses torch's dynamo-based exporter (needs onnxscript); ``dynamo=False`` selects the older
    TorchScript-based one.
    """
    require_onnxruntime()
    path = Path(path)
    model = copy.deepcopy(model).cpu().float().eval()
    example = (torch.zeros(2, *input_shape),)
    if dynamo:
        batch = {forward_args(model)[0]: {0: torch.export.Dim("batch")}}
        torch.onnx.export(model, example, str(path), dynamo=True, input_names=["input"],
                          output_names=["logits"], dynamic_shapes=batch, verbose=False)
    else:
        torch.onnx.export(model, example, str(path), dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def forward_args(model: nn.Module) -> list[str]:
    import inspect

    return list(inspect.signature(model.forward).parameters)


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """A CPU ONNX Runtime session with ``threads`` intra-op threads and one inter-op thread."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_onnxruntime(
    path: str | Path,
    input_shape: tuple[int, ...],
    batch_size: int,
    *,
    label: str,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
) -> LatencyRecord:
    """Wall-clock time of ``session.run`` on one random float32 batch."""
    check_counts(warmup, repeats, batch_size)
    session = onnx_session(path, threads)
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).numpy()
    feed = {session.get_inputs()[0].name: x}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    used = session.get_session_options().intra_op_num_threads
    return summarize(times, model=label, runtime="onnxruntime", device=cpu_name(), dtype="float32",
                     batch_size=batch_size, threads=used or (os.cpu_count() or 1), warmup=warmup)


class SparseCSRLinear(nn.Module):
    """A Linear layer whose weight is stored in sparse CSR form (zeros dropped). A module to
    time, not to train or copy (CSR tensors cannot be deep-copied)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", linear.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight, flat.t()).t()  # CSR x dense is the supported kernel
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)


def sparse_csr_linears(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Linear layer in sparse CSR form (for CPU timing)."""
    model = copy.deepcopy(model).cpu().float()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, SparseCSRLinear(child))
    return model


def interleaved_times(runners: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Wall-clock milliseconds of each runner, taken in turns (a, b, c, a, b, c, ...).

    On a machine shared with other work, load drifts over seconds; timing the candidates in
    turns exposes them to the same drift, and the per-round ratios (see
    :func:`paired_speedup`) cancel most of it.
    """
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"latency warmup must be >= 0 and latency_repeats >= 1, got {warmup} and {repeats}")
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(repeats):
        for label, run in runners.items():
            start = time.perf_counter()
            run()
            times[label].append((time.perf_counter() - start) * 1000.0)
    return times


def paired_speedup(dense_ms: list[float], pruned_ms: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range (q1, q3) of the per-round ratios dense / pruned."""
    ratios = [d / p for d, p in zip(dense_ms, pruned_ms)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return statistics.median(ratios), q1, q3


def torch_runner(model: nn.Module, input_shape: tuple[int, ...], batch_size: int, form: str = EAGER) -> Callable[[], object]:
    """A no-argument eval-mode forward pass on one random batch on the model's device, laid out
    as ``form`` expects (for interleaved timing). On CUDA each call waits for its kernels, so a
    wall clock around the call times the pass rather than the launch."""
    model.eval()
    device = next(model.parameters()).device
    if device.type != "cuda":
        steady_allocator()
    x = prepare_input(torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).to(device), form)

    def run() -> object:
        with torch.inference_mode():
            out = model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def torch_runtime(device: torch.device | str) -> tuple[str, str]:
    """(runtime, allocator) labels for torch timing on ``device``, as ``LatencyRecord`` names them."""
    if torch.device(device).type == "cuda":
        return "torch-cuda", ""
    return "torch-eager", steady_allocator()


def onnx_runner(path: str | Path, input_shape: tuple[int, ...], batch_size: int, threads: int | None) -> Callable[[], object]:
    session = onnx_session(path, threads)
    feed = {session.get_inputs()[0].name: torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).numpy()}
    return lambda: session.run(None, feed)


def measured_speedup(dense: LatencyRecord, pruned: LatencyRecord) -> float:
    """Dense median / pruned median, refused unless both were measured the same way."""
    for key in ("runtime", "form", "device", "dtype", "batch_size", "threads", "allocator"):
        if getattr(dense, key) != getattr(pruned, key) and not (key == "runtime" and "sparse" in pruned.runtime):
            raise ConfigError(f"measured speedup compares like with like: {key} differs "
                              f"({getattr(dense, key)} vs {getattr(pruned, key)})")
    return dense.median_ms / pruned.median_ms


def check_runtime(runtime: str, key: str = "runtime") -> None:
    if runtime not in RUNTIMES:
        raise ConfigError(f"{key}: unknown latency runtime {runtime!r} (allowed: {', '.join(RUNTIMES)})")


class Unavailable(Exception):
    """A runtime that cannot run a form here (not installed, compilation failed); the message says why."""


def runtime_label(runtime: str, device: torch.device) -> str:
    """The name a record gives ``runtime`` (one of :data:`RUNTIMES`) on ``device``."""
    if runtime == TORCH:
        return torch_runtime(device)[0]
    return runtime


def short_reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def deployment_runner(model: nn.Module, form: str, runtime: str, input_shape: tuple[int, ...], batch_size: int,
                      threads: int, workdir: Path) -> Callable[[], object]:
    """A no-argument forward pass of ``model`` in deployment ``form`` under ``runtime``; raises
    :class:`Unavailable` where this runtime cannot run it. A torch.compile runner has compiled
    (its first call) before it is returned."""
    deployed = deployment_form(model, form)
    if runtime == TORCH:
        return torch_runner(deployed, input_shape, batch_size, form)
    if runtime == COMPILE:
        try:
            run = torch_runner(torch.compile(deployed, backend="inductor"), input_shape, batch_size, form)
            run()
        except Exception as exc:  # inductor fails in many ways (no C++ compiler, an unsupported op): skip, say why
            raise Unavailable(f"torch.compile failed: {short_reason(exc)}") from None
        return run
    if form == FOLDED_CHANNELS_LAST:
        raise Unavailable("an ONNX graph has no memory layout (ONNX Runtime chooses its own): same as bn-folded")
    try:
        require_onnxruntime()
    except ConfigError as exc:
        raise Unavailable(str(exc)) from None
    path = workdir / f"{id(deployed)}.onnx"
    try:
        export_onnx(deployed, input_shape, path)
    except Exception as exc:  # the exporter's errors have no common type
        raise Unavailable(f"ONNX export failed: {short_reason(exc)}") from None
    return onnx_runner(path, input_shape, batch_size, threads)


@dataclass(frozen=True)
class FormTiming:
    """Every model timed in turns in one form under one runtime; ``skipped`` says why not, where not."""

    runtime: str  # as records name it
    form: str
    records: dict[str, LatencyRecord]
    times: dict[str, list[float]]  # per round, milliseconds, by model label
    skipped: str = ""

    def paired(self, dense: str, pruned: str) -> tuple[float, float, float]:
        """Median and interquartile range of the per-round ratios dense / pruned."""
        return paired_speedup(self.times[dense], self.times[pruned])


def time_forms(
    models: dict[str, nn.Module],
    input_shape: tuple[int, ...],
    batch_size: int,
    *,
    forms: tuple[str, ...] = (EAGER,),
    runtimes: tuple[str, ...] = (TORCH,),
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 30,
) -> list[FormTiming]:
    """Time every model (eval mode, on its own device, float32) in each form x runtime, the
    models of one form and runtime in turns (:func:`interleaved_times`).

    ONNX Runtime runs on the CPU whatever the models' device. torch.compile runs with a
    recompile limit high enough for every model here (one code object compiles once per model
    and form) and fails rather than falling back to eager when the limit is hit.
    """
    check_counts(warmup, repeats, batch_size)
    for form in forms:
        check_form(form, "latency_forms")
    for runtime in runtimes:
        check_runtime(runtime, "latency_runtimes")
    device = next(next(iter(models.values())).parameters()).device
    timings = []
    limits = compile_limits(len(models) * len(forms)) if COMPILE in runtimes else contextlib.nullcontext()
    with torch_threads(threads) as used, tempfile.TemporaryDirectory() as tmp, limits:
        for runtime in runtimes:
            for form in forms:
                label = runtime_label(runtime, device)
                try:
                    runners = {name: deployment_runner(m, form, runtime, input_shape, batch_size, used, Path(tmp))
                               for name, m in models.items()}
                except Unavailable as exc:
                    timings.append(FormTiming(label, form, {}, {}, skipped=str(exc)))
                    continue
                times = interleaved_times(runners, warmup, repeats)
                on_cpu = runtime == ONNX or device.type != "cuda"
                name = cpu_name() if on_cpu else f"{device} ({torch.cuda.get_device_name(device)})"
                allocator = steady_allocator() if on_cpu and runtime != ONNX else ""
                records = {m: summarize(t, model=m, runtime=label, form=form, device=name, dtype="float32",
                                        batch_size=batch_size, threads=used, warmup=warmup, allocator=allocator)
                           for m, t in times.items()}
                timings.append(FormTiming(label, form, records, times))
    return timings


@contextlib.contextmanager
def compile_limits(compilations: int) -> Iterator[None]:
    """torch.compile may compile one forward ``compilations`` times here, and must say so
    where it cannot (its default is a silent fallback to eager after 8)."""
    import torch._dynamo

    with torch._dynamo.config.patch(recompile_limit=max(8, compilations + 1), fail_on_recompile_limit_hit=True):
        yield


@dataclass(frozen=True)
class BestAgainstBest:
    """Each model in its own fastest form and runtime; speedup = dense median / pruned median."""

    dense: LatencyRecord
    pruned: LatencyRecord

    @property
    def speedup(self) -> float:
        return self.dense.median_ms / self.pruned.median_ms


def best_against_best(timings: list[FormTiming], dense: str = "dense", pruned: str = "pruned") -> BestAgainstBest:
    """The fastest measured record of ``dense`` against the fastest of ``pruned``."""
    ran = [t for t in timings if not t.skipped]
    if not ran:
        raise ValueError("best against best needs at least one runtime and form that ran")
    fastest = {label: min((t.records[label] for t in ran), key=lambda r: r.median_ms) for label in (dense, pruned)}
    return BestAgainstBest(fastest[dense], fastest[pruned])
