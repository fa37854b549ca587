"""Fast training (`train.precision`, `train.channels_last`, `train.compile`): the same masks, pruned
weights exactly zero, accuracy close to float32, and the settings in the run id only when set.

Accuracy tolerance: 0.03 top-1 on the 449 digits test images (13 images) after the same short
fine-tuning from the same pruned weights.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import prunebench as pb
from prunebench.cli import main
from prunebench.spec import ExperimentSpec, TrainSpec
from prunebench.data import load_dataset
from prunebench.errors import ConfigError
from prunebench.models import create_model
from prunebench.train.step import autocast_supported, check_precision

ACCURACY_TOLERANCE = 0.03
FINETUNE = {"epochs": 1, "lr": 0.01, "batch_size": 64, "max_steps_per_epoch": 8}  # full batches only


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a shared, busy machine can take twenty times as long
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> pb.DataSplits:
    return load_dataset("digits")


def pruned(name: str, data: pb.DataSplits) -> tuple[nn.Module, pb.Mask]:
    """A dense model trained a short float32 epoch, pruned by magnitude to compression 4."""
    torch.manual_seed(0)
    model = create_model(name, data.input_shape, data.num_classes)
    pb.fit(model, data, epochs=1, lr=0.05, batch_size=64, max_steps_per_epoch=12)
    return model, pb.prune(model, data, "magnitude", 4)


def finetuned(model: nn.Module, data: pb.DataSplits, mask: pb.Mask, **mode: Any) -> tuple[nn.Module, float]:
    copy_ = copy.deepcopy(model)
    pb.finetune(copy_, data, mask, **FINETUNE, **mode)
    return copy_, pb.measure(copy_, data, mask).top1


def assert_holds_mask(model: nn.Module, mask: pb.Mask) -> None:
    """Nonzero exactly where the mask keeps: pruned weights exactly zero, no survivor lost."""
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        assert torch.equal(params[name].detach() != 0, keep), name


@pytest.mark.slow  # trains a digits model three times
def test_bf16_and_channels_last_keep_the_mask_and_the_accuracy(digits: pb.DataSplits) -> None:
    dense, mask = pruned("resnet-20", digits)
    reference, reference_top1 = finetuned(dense, digits, mask)
    for mode in ({"precision": "bf16"}, {"precision": "bf16", "channels_last": True}, {"channels_last": True}):
        model, top1 = finetuned(dense, digits, mask, **mode)
        assert_holds_mask(model, mask)
        assert abs(top1 - reference_top1) <= ACCURACY_TOLERANCE, mode
        assert all(p.is_contiguous() for p in model.parameters())  # the layout is given back after training
        if "precision" in mode:  # autocast ran: bfloat16 arithmetic moved the weights off the float32 run's
            assert not torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_fp16_with_a_grad_scaler_keeps_the_mask(digits: pb.DataSplits) -> None:
    dense, mask = pruned("lenet-300-100", digits)  # float16 arithmetic is emulated on most CPUs: a small model
    _, reference_top1 = finetuned(dense, digits, mask)
    model, top1 = finetuned(dense, digits, mask, precision="fp16")
    assert_holds_mask(model, mask)
    assert abs(top1 - reference_top1) <= ACCURACY_TOLERANCE


@pytest.mark.slow  # torch.compile builds C++ kernels for the forward and backward: about a minute on busy cores
def test_compiled_training_keeps_the_mask_and_the_accuracy(digits: pb.DataSplits) -> None:
    from torch._dynamo.utils import counters

    dense, mask = pruned("lenet-300-100", digits)
    _, reference_top1 = finetuned(dense, digits, mask)
    compiled_before = counters["stats"]["unique_graphs"]
    model, top1 = finetuned(dense, digits, mask, compile=True)
    assert counters["stats"]["unique_graphs"] > compiled_before  # the forward was compiled, not run eagerly
    assert_holds_mask(model, mask)  # masking updated the parameters the compiled code reads
    assert abs(top1 - reference_top1) <= ACCURACY_TOLERANCE
    assert not hasattr(model, "_orig_mod")  # the caller's module is unchanged, not the compiled wrapper


def test_the_settings_are_in_the_run_id() -> None:
    spec = ExperimentSpec(dataset="digits", model="mlp")
    hashed = json.loads(spec.canonical_json())["train"]
    assert (hashed["precision"], hashed["channels_last"], hashed["compile"]) == ("fp32", False, False)
    ids = {spec.content_hash()}
    for change in ({"precision": "bf16"}, {"precision": "fp16"}, {"channels_last": True}, {"compile": True}):
        changed = spec.replace(finetune=TrainSpec(**{**spec.finetune.model_dump(), **change}))
        assert json.loads(changed.canonical_json())["finetune"][next(iter(change))] == next(iter(change.values()))
        ids.add(changed.content_hash())
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.precision=fp8", "train.precision: Input should be 'fp32', 'bf16' or 'fp16' (got 'fp8')"),
        ("finetune.compile=maybe", "finetune.compile: Input should be a valid boolean (got 'maybe')"),
        ("train.channels_last=1", "train.channels_last: Input should be a valid boolean (got 1)"),
    ],
)
def test_bad_values_are_one_line_errors(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dataset": "synthetic", "model": "mlp"}))
    assert main(["run", str(config), override, "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == f"prunebench: error: {message}\n"
    assert not (tmp_path / "r").exists()


def test_a_precision_torch_cannot_autocast_here_is_refused() -> None:
    assert autocast_supported("cpu", torch.bfloat16) and autocast_supported("cpu", torch.float16)
    assert not autocast_supported("cpu", torch.float64)  # torch would warn and silently run float32
    check_precision(TrainSpec(precision="fp16"), "cpu")  # this torch has CPU float16 autocast
    with pytest.raises(ConfigError, match=r"^finetune\.precision: bf16 is not supported by torch .* autocast on meta "
                       r"\(allowed there: fp32\)$"):
        check_precision(TrainSpec(precision="bf16"), "meta", "finetune")  # a device type with no autocast at all


def test_a_run_records_its_precision(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": "synthetic", "model": "mlp", "threads": 1,
        "train": {"epochs": 1, "lr": 0.05, "batch_size": 16, "precision": "bf16"},
        "prune": {"strategy": "magnitude", "compression": 4},
        "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 16, "precision": "bf16"},
    }))
    assert main(["-q", "run", str(config), "--results", str(tmp_path / "r")]) == 0
    (found,) = (tmp_path / "r").glob("*/result.json")
    result = json.loads(found.read_text())
    assert result["spec"]["train"]["precision"] == "bf16" and result["spec"]["finetune"]["precision"] == "bf16"
