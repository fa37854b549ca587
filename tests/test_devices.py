"""Devices are checked against the installed torch before anything runs, by the CLI and the API alike."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import prunebench as pb
from prunebench.cli import main
from prunebench.devices import check_device
from prunebench.errors import ConfigError

TINY = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    "prune": {"strategy": "magnitude", "compression": 4},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has a CUDA GPU")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def files_under(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(folder.rglob("*"))
    }


def tiny_data() -> pb.DataSplits:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 8, generator=generator), torch.randint(0, 3, (300,), generator=generator)
    return pb.DataSplits.from_tensors(train=(x[:240], y[:240]), test=(x[240:], y[240:]))


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))


@NO_CUDA
def test_cli_refuses_cuda_on_this_cpu_only_torch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No monkeypatching: the torch installed here really has no CUDA."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    before = files_under(tmp_path)
    assert main(["run", str(config), "device=cuda", "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: device: cuda is not available") and len(err.splitlines()) == 1, err
    assert files_under(tmp_path) == before


@NO_CUDA
@pytest.mark.parametrize("call", ["fit", "prune", "finetune", "measure"])
def test_api_refuses_cuda_before_touching_the_model(call: str) -> None:
    model, data = tiny_model(), tiny_data()
    mask = pb.Mask.ones(dict(model.named_parameters()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = {
        "fit": lambda: pb.fit(model, data, epochs=1, device="cuda"),
        "prune": lambda: pb.prune(model, data, compression=2, device="cuda"),
        "finetune": lambda: pb.finetune(model, data, mask, epochs=1, device="cuda"),
        "measure": lambda: pb.measure(model, data, device="cuda"),
    }
    with pytest.raises(ConfigError, match="^device: cuda is not available"):
        calls[call]()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_api_refuses_a_device_that_is_not_one() -> None:
    with pytest.raises(ConfigError, match="^device: 'tpu' is not a device prunebench runs on"):
        pb.fit(tiny_model(), tiny_data(), epochs=1, device="tpu")


def test_a_gpu_index_past_the_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"^device: cuda:2 is not available: this machine has 2 GPU\(s\), cuda:0 to cuda:1"):
        check_device("cuda:2")


def test_api_on_cpu_gives_the_result_it_gives_without_a_device() -> None:
    results = []
    for device in (None, "cpu"):
        model, data = tiny_model(), tiny_data()
        pb.fit(model, data, epochs=1, lr=0.05, batch_size=32, device=device)
        mask = pb.prune(model, data, compression=2, device=device)
        results.append((pb.measure(model, data, mask, device=device).top1, model.state_dict()))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(results[0][1][k], v) for k, v in results[1][1].items())


@CUDA
def test_the_api_runs_on_a_gpu() -> None:
    model, data = tiny_model(), tiny_data()
    pb.fit(model, data, epochs=1, device="cuda")
    mask = pb.prune(model, data, compression=2, device="cuda")
    pb.finetune(model, data, mask, epochs=1, device="cuda")
    metrics = pb.measure(model, data, mask, device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    assert metrics.sizes.compression_ratio == pytest.approx(2, rel=1e-2)


@CUDA
def test_a_run_on_a_gpu_records_its_device(tmp_path: Path) -> None:
    """Training, pruning and latency on the GPU; the result says where it ran."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "latency": True, "latency_repeats": 3}))
    results = tmp_path / "results"
    assert main(["-q", "run", str(config), "device=cuda", "--results", str(results)]) == 0
    (result_file,) = results.glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["provenance"]["device"] == "cuda"
    assert result["sizes"]["compression_ratio"] == pytest.approx(4, rel=1e-3)
