"""Per-op MACs and bytes against hand counts, and the roofline's choice of bound. No assertion
depends on how fast anything ran."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.metrics import dense_macs
from prunebench.metrics.roofline import (
    Machine,
    OpCost,
    bandwidth_probe,
    by_kind,
    conv_probes,
    gemm_probe,
    measure_bandwidth,
    measure_gemm,
    measure_machine,
    op_costs,
    predicted_ceiling,
    predicted_seconds,
    roofline,
    typical_tensor_bytes,
)
from prunebench.models import create_model


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv(x))  # functional work in the parent's forward


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), Residual(),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()


def test_macs_and_bytes_equal_a_hand_count() -> None:
    costs = op_costs(tiny(), (2, 4, 4), batch_size=2)
    got = [(c.module, c.op, c.kind, c.macs, c.weight_bytes, c.input_bytes, c.output_bytes) for c in costs]
    act = 2 * 3 * 4 * 4 * 4  # one 2x3x4x4 float32 activation: 384 bytes
    assert got == [
        # conv: 96 outputs x (2 channels x 9 taps); weight 3x2x3x3 and bias 3; input 2x2x4x4
        ("0", "convolution", "conv", 96 * 18, (54 + 3) * 4, 2 * 2 * 16 * 4, act),
        ("1", "native_batch_norm", "batch_norm", 0, 4 * 3 * 4, act, act),  # scale, shift, mean, var
        ("2", "relu", "elementwise", 0, 0, act, act),
        ("3.conv", "convolution", "conv", 96 * 27, 81 * 4, act, act),
        ("3", "add", "elementwise", 0, 0, 2 * act, act),  # the residual sum reads two tensors
        ("3", "relu", "elementwise", 0, 0, act, act),
        # Flatten is a view (nothing moves); Linear: 2 x 48 x 5 MACs, weight 5x48 and bias 5
        ("5", "addmm", "linear", 2 * 48 * 5, (240 + 5) * 4, act, 2 * 5 * 4),
    ]
    assert costs[0].bytes == (57 + 64 + 96) * 4  # weights + input + output elements, 4 bytes each


def test_bytes_follow_the_dtype() -> None:
    single = op_costs(tiny(), (2, 4, 4), 2)
    double = op_costs(tiny().double(), (2, 4, 4), 2, dtype=torch.float64)
    assert [c.bytes * 2 for c in single] == [c.bytes for c in double]
    assert [c.macs for c in single] == [c.macs for c in double]


def test_macs_agree_with_the_flop_counter_on_a_resnet() -> None:
    model = create_model("resnet-20", (3, 32, 32), 10)
    costs = op_costs(model, (3, 32, 32), batch_size=3)
    assert sum(c.macs for c in costs) == 3 * sum(dense_macs(model, (3, 32, 32)).values())
    kinds = {c.kind for c in costs}
    assert {"conv", "batch_norm", "elementwise", "pool", "linear"} <= kinds
    # every residual block adds once: 3 stages x 3 blocks
    assert sum(c.op == "add" for c in costs) == 9
    assert all(c.conv is not None for c in costs if c.kind == "conv")


def test_bad_batch_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        op_costs(tiny(), (2, 4, 4), 0)


def cost(macs: int, nbytes: int, kind: str = "conv", conv: tuple | None = None) -> OpCost:
    return OpCost(module="m", op="x", kind=kind, macs=macs, weight_bytes=0, input_bytes=nbytes,  # type: ignore[arg-type]
                  output_bytes=0, conv=conv)


def test_roofline_takes_the_larger_bound() -> None:
    machine = Machine(gemm_macs_per_s=1e10, bandwidth_bytes_per_s=1e9, threads=1)
    compute, memory = roofline([cost(10**9, 10**6), cost(0, 10**9, kind="elementwise")], machine)
    assert (compute.compute_s, compute.memory_s, compute.seconds, compute.bound) == (0.1, 1e-3, 0.1, "compute")
    assert (memory.seconds, memory.bound) == (1.0, "memory")
    assert predicted_seconds([cost(10**9, 10**6), cost(0, 10**9)], machine) == pytest.approx(1.1)
    assert by_kind([compute, memory]) == {"conv": 0.1, "elementwise": 1.0}


def test_a_measured_convolution_rate_replaces_the_gemm_rate_for_its_shape() -> None:
    shape = ((1, 2, 4, 4), (3, 2, 3, 3), False, (1, 1), (1, 1), (1, 1), 1)
    machine = Machine(gemm_macs_per_s=1e10, bandwidth_bytes_per_s=1e12, threads=1, conv_macs_per_s={shape: 1e9})
    slow, other = roofline([cost(10**9, 0, conv=shape), cost(10**9, 0, conv=(1,))], machine)
    assert (slow.seconds, other.seconds) == (1.0, 0.1)
    dense, small = [cost(10**9, 0, conv=shape)], [cost(10**8, 10**9)]  # small: 10x fewer MACs, but 1 s of bytes
    assert predicted_ceiling(dense, small, machine) == pytest.approx(1.0 / 0.01)
    memory_machine = Machine(1e10, 1e9, 1, {shape: 1e9})
    assert predicted_ceiling(dense, small, memory_machine) == pytest.approx(1.0)


def test_probes_do_the_work_they_claim() -> None:
    gemm = gemm_probe(8)
    assert gemm.work == 512 and gemm.call().shape == (8, 8)
    add = bandwidth_probe(4096)
    assert add.work == 3 * 4096 and add.call().numel() == 1024
    costs = op_costs(tiny(), (2, 4, 4), 2)
    probes = conv_probes(costs)
    assert len(probes) == 2  # the two convolutions differ in shape
    for c in costs:
        if c.conv is not None:
            assert probes[c.conv].work == c.macs
            assert tuple(probes[c.conv].call().shape) == (2, 3, 4, 4)


def test_measurements_are_rates_and_leave_threads_alone() -> None:
    before = torch.get_num_threads()
    assert measure_gemm(1, size=64) > 0 and measure_bandwidth(1, nbytes=2**16) > 0
    assert torch.get_num_threads() == before


def test_measure_machine_measures_every_convolution_shape() -> None:
    costs = op_costs(tiny(), (2, 4, 4), 2)
    machine = measure_machine(costs, threads=1)
    assert set(machine.conv_macs_per_s) == {c.conv for c in costs if c.conv is not None}
    assert machine.threads == 1 and machine.gemm_macs_per_s > 0 and machine.bandwidth_bytes_per_s > 0
    assert measure_machine(costs, threads=1, per_shape=False).conv_macs_per_s == {}


def test_typical_tensor_bytes_is_the_bytes_weighted_median() -> None:
    costs = [OpCost("m", "x", "elementwise", 0, 0, n, n) for n in (10, 10, 1000)]
    assert typical_tensor_bytes(costs) == 1000  # two small ops move 40 of the 2040 bytes
    assert typical_tensor_bytes(costs[:2]) == 10


def test_the_benchmark_predicts_and_measures_every_model_in_the_same_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the benchmarks package
    from benchmarks.where_time_goes import predict_against_measured

    dense = create_model("resnet-20", (3, 8, 8), 10).eval()
    small = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10)).eval()
    result = predict_against_measured({"dense": dense, "compact": small}, batch=2, threads=1, warmup=0, rounds=3,
                                      clock="cpu", shape=(3, 8, 8))
    assert result["models"]["dense"]["macs"] == 2 * sum(dense_macs(dense, (3, 8, 8)).values())
    compact = result["models"]["compact"]
    for name in ("per-shape", "gemm"):
        assert compact[name]["predicted_ms"] > 0 and compact[name]["predicted_ceiling"] > 0
    assert set(compact["predicted_ms_by_kind"]) == {"conv", "elementwise", "pool", "linear"}
    distinct = {c.conv for m in (dense, small) for c in op_costs(m, (3, 8, 8), 2) if c.conv is not None}
    assert len(result["conv_gmacs_per_s"]) == len(distinct)  # every convolution shape got its probe
    assert compact["profiled_ms_by_kind"]["conv"] > 0  # the profiler's split is read by op kind
