"""Latency records (fields, like-for-like checks), sparse CSR Linear, and ONNX export of a
compacted ResNet. No assertion here depends on how fast anything ran."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.metrics.latency import (
    LatencyRecord,
    measured_speedup,
    sparse_csr_linears,
    steady_allocator,
    time_torch,
    torch_threads,
)
from prunebench.models import create_model


def mlp() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight[torch.rand(32, 16) < 0.8] = 0  # an unstructured 80% mask
    return model


def test_torch_record_carries_how_it_was_measured() -> None:
    record = time_torch(mlp(), (16,), batch_size=3, label="dense", threads=1, warmup=1, repeats=5)
    assert (record.batch_size, record.threads, record.runtime, record.dtype) == (3, 1, "torch-eager", "float32")
    assert record.device.startswith("cpu") and record.repeats == 5 and record.warmup == 1
    assert record.min_ms <= record.q1_ms <= record.median_ms <= record.q3_ms <= record.max_ms
    assert set(record.to_dict()) >= {"batch_size", "threads", "runtime", "device", "dtype", "median_ms"}
    assert "batch 3" in record.describe() and "1 threads" in record.describe()


def test_threads_are_restored() -> None:
    before = torch.get_num_threads()
    with torch_threads(1) as used:
        assert used == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        with torch_threads(0):
            pass


@pytest.mark.parametrize("field,value", [("repeats", 0), ("warmup", -1)])
def test_bad_counts_are_config_errors(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"latency.{field}"):
        time_torch(mlp(), (16,), 2, label="dense", **{field: value})  # type: ignore[arg-type]


def test_sparse_csr_linear_computes_the_dense_result() -> None:
    model = mlp().eval()
    sparse = sparse_csr_linears(model).eval()
    assert sparse[0].weight.layout == torch.sparse_csr
    assert sparse[0].weight._nnz() == int(torch.count_nonzero(model[0].weight))
    x = torch.randn(5, 16)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-5, atol=1e-6)
    record = time_torch(sparse, (16,), 2, label="masked", threads=1, warmup=1, repeats=3, runtime="torch-sparse-csr")
    assert record.runtime == "torch-sparse-csr"


def record(**changes: object) -> LatencyRecord:
    base = dict(model="dense", runtime="torch-eager", device="cpu", dtype="float32", batch_size=64,
                threads=2, warmup=1, repeats=3, median_ms=10.0, q1_ms=9.0, q3_ms=11.0, min_ms=8.0, max_ms=12.0)
    base.update(changes)
    return LatencyRecord(**base)  # type: ignore[arg-type]


def test_measured_speedup_only_like_for_like() -> None:
    assert measured_speedup(record(), record(model="compact", median_ms=4.0)) == 2.5
    with pytest.raises(ConfigError, match="threads differs"):
        measured_speedup(record(), record(threads=1))
    with pytest.raises(ConfigError, match="batch_size differs"):
        measured_speedup(record(), record(batch_size=1))
    with pytest.raises(ConfigError, match="allocator differs"):
        measured_speedup(record(allocator="glibc-steady"), record(allocator="glibc"))


RSS_AFTER_FREE = """
import sys, torch
from prunebench.metrics.latency import steady_allocator
label = steady_allocator() if sys.argv[1] == "steady" else "default"
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
before = rss_mib()
x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
del x
print(label, rss_mib() - before)
"""


@pytest.mark.slow  # repeated forward passes to watch the heap
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_steady_allocator_keeps_freed_activations_in_the_heap() -> None:
    def run(mode: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], capture_output=True, text=True, check=True)
        label, kept = out.stdout.split()
        return label, float(kept)

    # glibc's default: a 64 MiB block is mmap'd and returned to the OS on free, so the next
    # forward pass page-faults it in again.
    assert run("default")[1] < 16
    label, kept = run("steady")
    assert label == "glibc-steady" and kept > 48


def test_cpu_records_name_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    record_ = time_torch(mlp(), (16,), 2, label="dense", threads=1, warmup=0, repeats=1)
    assert record_.allocator == steady_allocator() != ""
    steady_allocator.cache_clear()
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    try:
        assert steady_allocator() == "jemalloc"
        steady_allocator.cache_clear()
        monkeypatch.delenv("LD_PRELOAD")
        monkeypatch.setenv("PRUNEBENCH_STEADY_ALLOCATOR", "0")
        assert steady_allocator() in ("glibc", "system")
    finally:
        steady_allocator.cache_clear()


@pytest.mark.slow  # exports a ResNet to ONNX and times it
def test_compacted_resnet_runs_in_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from prunebench.metrics.latency import export_onnx, onnx_session, time_onnxruntime
    from prunebench.pruning.channels import ChannelTarget, prune_channels
    from prunebench.pruning.compact import compact

    shape = (3, 16, 16)
    model = create_model("resnet-20", shape, 10).eval()
    selection = prune_channels(model, shape, "l1_filter", ChannelTarget("speedup", 2.0))
    small = compact(model, selection.mask, shape).eval()
    path = export_onnx(small, shape, tmp_path / "resnet20.onnx")
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    session = onnx_session(path, threads=1)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        expected = small(x)
    assert got.shape == (3, 10)  # a batch size other than the export example's
    assert float((torch.from_numpy(got) - expected).abs().max()) < 1e-4
    timed = time_onnxruntime(path, shape, 1, label="compact", threads=1, warmup=1, repeats=3)
    assert (timed.runtime, timed.batch_size, timed.threads) == ("onnxruntime", 1, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_events_record() -> None:
    timed = time_torch(mlp(), (16,), 4, label="dense", device="cuda", warmup=1, repeats=3)
    assert timed.runtime == "torch-cuda" and timed.device.startswith("cuda")


def test_torch_runtime_labels() -> None:
    from prunebench.metrics.latency import torch_runtime

    assert torch_runtime("cuda") == ("torch-cuda", "")
    assert torch_runtime("cpu") == ("torch-eager", steady_allocator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_runner_runs_on_the_models_device() -> None:
    from prunebench.metrics.latency import torch_runner

    out = torch_runner(mlp().cuda(), (16,), 4)()
    assert isinstance(out, torch.Tensor) and out.device.type == "cuda" and out.shape == (4, 4)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


@pytest.mark.slow  # times every runtime and deployment form
def test_every_form_and_runtime_is_timed_or_says_why_not() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from prunebench.metrics.latency import best_against_best, time_forms

    models = {"dense": tiny_cnn(), "pruned": tiny_cnn()[:1].append(nn.Flatten()).append(nn.Linear(512, 4)).eval()}
    forms = ("eager", "bn-folded", "bn-folded-channels-last")
    timings = time_forms(models, (3, 8, 8), 2, forms=forms, runtimes=("torch", "onnxruntime"),
                         threads=1, warmup=1, repeats=3)
    assert [(t.runtime, t.form) for t in timings] == [("torch-eager", f) for f in forms] + [("onnxruntime", f) for f in forms]
    skipped = {(t.runtime, t.form): t.skipped for t in timings if t.skipped}
    assert list(skipped) == [("onnxruntime", "bn-folded-channels-last")] and "layout" in skipped[("onnxruntime", "bn-folded-channels-last")]
    for t in timings:
        if not t.skipped:
            assert {r.form for r in t.records.values()} == {t.form} and set(t.records) == {"dense", "pruned"}
            assert all(r.runtime == t.runtime and r.threads == 1 and r.repeats == 3 for r in t.records.values())
            assert (t.records["dense"].allocator == "") == (t.runtime == "onnxruntime")
            assert t.paired("dense", "pruned")[0] > 0
    eager, folded = timings[0].records["dense"], timings[1].records["dense"]
    with pytest.raises(ConfigError, match="form differs"):
        measured_speedup(eager, folded)
    best = best_against_best(timings)
    ran = [t for t in timings if not t.skipped]
    assert best.dense.median_ms == min(t.records["dense"].median_ms for t in ran)
    assert best.pruned.median_ms == min(t.records["pruned"].median_ms for t in ran)
    assert best.speedup == best.dense.median_ms / best.pruned.median_ms


def test_unknown_forms_and_runtimes_are_config_errors() -> None:
    from prunebench.metrics.latency import time_forms

    with pytest.raises(ConfigError, match="latency_runtimes: unknown latency runtime 'tvm' .allowed: torch, torch-compile, onnxruntime"):
        time_forms({"dense": tiny_cnn()}, (3, 8, 8), 2, runtimes=("tvm",))
    with pytest.raises(ConfigError, match="latency_forms: unknown deployment form 'fused'"):
        time_forms({"dense": tiny_cnn()}, (3, 8, 8), 2, forms=("fused",))


def test_records_without_a_form_are_eager() -> None:
    old = {k: v for k, v in time_torch(mlp(), (16,), 2, label="dense", warmup=0, repeats=2).to_dict().items() if k != "form"}
    assert LatencyRecord(**old).form == "eager"


@pytest.mark.slow
def test_torch_compile_runs_a_folded_model() -> None:
    """One compile of a tiny model (inductor on CPU takes about a minute on a busy machine)."""
    import shutil

    from prunebench.metrics.latency import time_forms

    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("inductor on CPU needs a C++ compiler")

    timings = time_forms({"dense": tiny_cnn()}, (3, 8, 8), 2, forms=("bn-folded",), runtimes=("torch-compile",),
                         threads=1, warmup=1, repeats=2)
    (timing,) = timings
    assert timing.runtime == "torch-compile" and timing.form == "bn-folded"
    assert not timing.skipped and timing.records["dense"].repeats == 2


def test_a_failing_compile_is_skipped_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunebench.metrics.latency import time_forms

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no C++ compiler\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    (timing,) = time_forms({"dense": tiny_cnn()}, (3, 8, 8), 2, runtimes=("torch-compile",), warmup=0, repeats=2)
    assert timing.skipped == "torch.compile failed: RuntimeError: no C++ compiler" and timing.records == {}
