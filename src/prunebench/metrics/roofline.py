"""Where a forward pass's time goes: per-operation MACs and bytes moved, and a roofline estimate.

``op_costs`` runs one forward pass of a batch and records every operator torch executes (the
aten ops, so a functional ReLU or a residual ``+`` in a module's ``forward`` counts as much as
a layer): its MACs, from ``torch.utils.flop_counter``'s formulas (the counter ``dense_macs``
uses; FLOPs = 2 x MACs), and the bytes it moves at the tensors' dtype: weights read (the
model's parameters and buffers), activations read and activations written. Views move nothing
and are left out. Each op is named by the innermost module whose ``forward`` ran it.

The roofline: an op takes at least MACs / compute throughput and at least bytes / memory
bandwidth, so its predicted time is the larger of the two, and a model's is the sum over its
ops. The throughput and bandwidth are measured on the machine (``measure_gemm``,
``measure_bandwidth``), not assumed; ``measure_convolutions`` measures the throughput each
distinct convolution shape reaches on its own, since a convolution with few channels runs far
below a large matrix multiply's rate. The predicted speedup ceiling of a structure is
predicted dense time / predicted compact time.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from prunebench.errors import ConfigError
from prunebench.metrics.latency import torch_threads
from prunebench.modes import eval_mode

Kind = Literal["conv", "linear", "batch_norm", "elementwise", "pool", "other"]
aten = torch.ops.aten

KINDS: dict[Any, Kind] = {
    aten.convolution: "conv", aten._convolution: "conv",
    aten.mm: "linear", aten.addmm: "linear", aten.bmm: "linear", aten.baddbmm: "linear",
    aten.native_batch_norm: "batch_norm", aten._native_batch_norm_legit_no_training: "batch_norm",
    aten._native_batch_norm_legit: "batch_norm",
    aten.relu: "elementwise", aten.relu_: "elementwise", aten.add: "elementwise", aten.add_: "elementwise",
    aten.mul: "elementwise", aten.mul_: "elementwise", aten.hardtanh: "elementwise",
    aten.hardtanh_: "elementwise", aten.constant_pad_nd: "elementwise", aten.clone: "elementwise",
    aten.mean: "pool", aten._adaptive_avg_pool2d: "pool", aten.avg_pool2d: "pool",
    aten.max_pool2d_with_indices: "pool", aten.max_pool2d: "pool",
}

ALLOCATIONS = {aten.empty, aten.empty_like, aten.empty_strided}  # reserve memory, move none


@dataclass(frozen=True)
class OpCost:
    """One operator of a forward pass over a whole batch."""

    module: str  # innermost module whose forward ran it ("" = the model's own forward)
    op: str  # aten op, e.g. "convolution", "relu", "add"
    kind: Kind
    macs: int
    weight_bytes: int  # parameters and buffers read
    input_bytes: int  # activations read
    output_bytes: int  # activations written
    # For a convolution: (input shape, weight shape, has bias, stride, padding, dilation, groups),
    # enough to rerun it alone (measure_convolutions); None for other ops.
    conv: tuple[Any, ...] | None = None

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.input_bytes + self.output_bytes


def tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _Recorder(TorchDispatchMode):
    """Records an OpCost for each non-view op, named by the module stack the hooks keep."""

    def __init__(self, stack: list[str], weights: set[int]) -> None:
        super().__init__()
        self.stack, self.weights = stack, weights
        self.costs: list[OpCost] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if func.is_view or packet in ALLOCATIONS or not tensors(out):
            return out
        formula = flop_registry.get(packet)
        macs = int(formula(*args, **kwargs, out_val=out)) // 2 if formula is not None else 0
        inputs = {id(t): t for t in tensors((args, kwargs))}  # a tensor passed twice is read once
        weight = sum(nbytes(t) for t in inputs.values() if t.untyped_storage().data_ptr() in self.weights)
        read = sum(nbytes(t) for t in inputs.values()) - weight
        conv = None
        if KINDS.get(packet) == "conv":
            x, w, bias, stride, padding, dilation, transposed, _, groups = args[:9]
            if not transposed:
                conv = (tuple(x.shape), tuple(w.shape), bias is not None, tuple(stride), tuple(padding),
                        tuple(dilation), groups)
        self.costs.append(OpCost(module=self.stack[-1], op=packet.__name__, kind=KINDS.get(packet, "other"),
                                 macs=macs, weight_bytes=weight, input_bytes=read,
                                 output_bytes=sum(nbytes(t) for t in tensors(out)), conv=conv))
        return out


def op_costs(model: nn.Module, input_shape: tuple[int, ...], batch_size: int,
             dtype: torch.dtype = torch.float32) -> list[OpCost]:
    """Every op of one eval-mode forward pass of a ``batch_size`` batch, in execution order.

    Tensors count at ``dtype``'s size when the model's floating-point tensors have that dtype
    (the pass runs on the model as it is, so pass a model already cast).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    stack = [""]
    names = {module: name for name, module in model.named_modules()}

    def pre(module: nn.Module, _: Any) -> None:
        stack.append(names[module])

    def post(module: nn.Module, _: Any, __: Any) -> None:  # returns None: the output stays as it is
        stack.pop()

    handles = [h for m in names for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    recorder = _Recorder(stack, weights)
    x = torch.zeros(batch_size, *input_shape, device=device, dtype=dtype)
    try:
        with eval_mode(model), torch.no_grad(), recorder:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return recorder.costs


@dataclass(frozen=True)
class Machine:
    """What the roofline needs of a machine, as measured (see ``measure_machine``)."""

    gemm_macs_per_s: float  # a large float32 matrix multiply
    bandwidth_bytes_per_s: float  # an elementwise add over tensors the size of the activations
    threads: int
    # Throughput each convolution shape reaches alone (OpCost.conv -> MAC/s); a shape not here
    # is bounded by the GEMM rate.
    conv_macs_per_s: Mapping[tuple[Any, ...], float] = field(default_factory=dict)


@dataclass(frozen=True)
class OpTime:
    cost: OpCost
    compute_s: float
    memory_s: float

    @property
    def seconds(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


def roofline(costs: Sequence[OpCost], machine: Machine) -> list[OpTime]:
    """Each op's compute bound (MACs / its throughput) and memory bound (bytes / bandwidth)."""
    times = []
    for c in costs:
        rate = machine.conv_macs_per_s.get(c.conv, machine.gemm_macs_per_s) if c.conv else machine.gemm_macs_per_s
        times.append(OpTime(c, c.macs / rate, c.bytes / machine.bandwidth_bytes_per_s))
    return times


def predicted_seconds(costs: Sequence[OpCost], machine: Machine) -> float:
    return sum(t.seconds for t in roofline(costs, machine))


def predicted_ceiling(dense: Sequence[OpCost], compact: Sequence[OpCost], machine: Machine) -> float:
    """Predicted dense time / predicted compact time: the speedup the structure can reach."""
    return predicted_seconds(dense, machine) / predicted_seconds(compact, machine)


def by_kind(times: Sequence[OpTime]) -> dict[str, float]:
    """Predicted seconds per op kind (conv, batch_norm, elementwise, ...)."""
    totals: dict[str, float] = {}
    for t in times:
        totals[t.cost.kind] = totals.get(t.cost.kind, 0.0) + t.seconds
    return totals


class Probe(NamedTuple):
    """A call to time and the work it does: MACs for compute probes, bytes for memory ones."""

    call: Callable[[], object]
    work: float


def median_seconds(call: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall-clock seconds of ``call`` after ``warmup`` untimed calls."""
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"warmup must be >= 0 and repeats >= 1, got {warmup} and {repeats}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rate(probe: Probe, threads: int, warmup: int = 3, repeats: int = 20) -> float:
    """Work per second of ``probe`` with ``threads`` torch threads (median over repeats)."""
    with torch_threads(threads), torch.inference_mode():
        return probe.work / median_seconds(probe.call, warmup, repeats)


def gemm_probe(size: int = 512, dtype: torch.dtype = torch.float32) -> Probe:
    """A ``size`` x ``size`` by ``size`` x ``size`` matrix multiply: size**3 MACs."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(dtype) for _ in range(2))
    out = torch.empty(size, size, dtype=dtype)
    return Probe(lambda: torch.mm(a, b, out=out), float(size**3))


def bandwidth_probe(nbytes: int = 4 * 2**20, dtype: torch.dtype = torch.float32) -> Probe:
    """``out = a + b`` over tensors of ``nbytes`` each: reads two, writes one (3 x nbytes).

    Choose ``nbytes`` like the activations of the model at hand (``typical_tensor_bytes``):
    tensors that fit in a cache move faster than main memory allows.
    """
    size = torch.empty((), dtype=dtype).element_size()
    numel = max(1, nbytes // size)
    a, b = torch.rand(numel).to(dtype), torch.rand(numel).to(dtype)
    out = torch.empty_like(a)
    return Probe(lambda: torch.add(a, b, out=out), float(3 * numel * size))


def conv_probes(costs: Sequence[OpCost], dtype: torch.dtype = torch.float32) -> dict[tuple[Any, ...], Probe]:
    """One probe per distinct 2-d convolution shape of ``costs``: that convolution alone."""
    probes = {}
    for c in costs:
        if c.conv is None or c.conv in probes or len(c.conv[0]) != 4:
            continue
        x_shape, w_shape, bias, stride, padding, dilation, groups = c.conv
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(x_shape, generator=generator).to(dtype)
        w = torch.randn(w_shape, generator=generator).to(dtype)
        b = torch.randn(w_shape[0], generator=generator).to(dtype) if bias else None
        call = functools.partial(torch.nn.functional.conv2d, x, w, b, stride, padding, dilation, groups)
        probes[c.conv] = Probe(call, float(c.macs))
    return probes


def typical_tensor_bytes(costs: Sequence[OpCost]) -> int:
    """The activation size that moves most of the bytes: the bytes-weighted median of the ops'
    output sizes."""
    ordered = sorted(costs, key=lambda c: c.output_bytes)
    total, running = sum(c.bytes for c in ordered), 0
    for c in ordered:
        running += c.bytes
        if running * 2 >= total:
            return c.output_bytes
    return 0


def measure_gemm(threads: int, size: int = 512, dtype: torch.dtype = torch.float32) -> float:
    """MACs per second of a square ``size`` matrix multiply on this machine."""
    return rate(gemm_probe(size, dtype), threads)


def measure_bandwidth(threads: int, nbytes: int = 4 * 2**20, dtype: torch.dtype = torch.float32) -> float:
    """Bytes per second an elementwise add over ``nbytes`` tensors moves on this machine."""
    return rate(bandwidth_probe(nbytes, dtype), threads)


def measure_convolutions(costs: Sequence[OpCost], threads: int,
                         dtype: torch.dtype = torch.float32) -> dict[tuple[Any, ...], float]:
    """MACs per second each distinct convolution shape of ``costs`` reaches run alone."""
    return {shape: rate(probe, threads, warmup=2, repeats=10) for shape, probe in conv_probes(costs, dtype).items()}


def measure_machine(costs: Sequence[OpCost], threads: int, dtype: torch.dtype = torch.float32,
                    per_shape: bool = True) -> Machine:
    """GEMM throughput, bandwidth at ``costs``' typical activation size and (``per_shape``) each
    convolution shape's throughput, measured now with ``threads`` threads."""
    return Machine(gemm_macs_per_s=measure_gemm(threads, dtype=dtype),
                   bandwidth_bytes_per_s=measure_bandwidth(threads, typical_tensor_bytes(costs), dtype),
                   threads=threads,
                   conv_macs_per_s=measure_convolutions(costs, threads, dtype) if per_shape else {})
