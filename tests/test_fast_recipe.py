"""The fast recipe's pieces (`lr_schedule: onecycle`, `label_smoothing`, `ema_decay`): each one's
definition checked by hand, masks kept exactly (pruned weights exactly zero, no survivor lost),
gradual pruning included, and bad values refused in one line."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.nn import functional as F

import prunebench as pb
from prunebench.cli import main
from prunebench.experiment import run_experiment
from prunebench.models import create_model
from prunebench.spec import TrainSpec, build_specs
from prunebench.train import train
from prunebench.train.averaging import ONECYCLE_DIV

SMALL = {"batch_size": 64, "max_steps_per_epoch": 6}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> pb.DataSplits:
    return pb.load_dataset("digits")


def mlp(data: pb.DataSplits) -> nn.Module:
    torch.manual_seed(0)
    return create_model("mlp", data.input_shape, data.num_classes)


class StepLog:
    """Records the LR and a copy of the weights after every step (after the masking callbacks)."""

    hands_mask_to_optimizer = False

    def __init__(self, model: nn.Module) -> None:
        self.model, self.lrs, self.weights = model, [], []  # type: ignore[var-annotated]
        self.optimizer: torch.optim.Optimizer | None = None

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def on_train_start(self) -> None:
        pass

    def on_step_end(self, step: int) -> None:
        assert self.optimizer is not None
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        self.weights.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})


def test_onecycle_rises_linearly_to_the_peak_then_falls_to_near_zero(digits: pb.DataSplits) -> None:
    model = mlp(digits)
    spec = TrainSpec(epochs=2, lr=0.2, lr_schedule="onecycle", warmup_fraction=0.25, **SMALL)
    log = StepLog(model)
    history = train(model, digits, spec, seed=0, callbacks=[log])
    total = 12  # 2 epochs x 6 steps; each logged LR is the one its step used (the schedule moves after)
    used = log.lrs
    assert len(used) == total and history.epochs[0].lr == pytest.approx(0.2 / ONECYCLE_DIV)
    peak = round(0.25 * total) - 1  # torch's pct_start: the peak at step 0.25 * 12 - 1 (0-based)
    assert used[peak] == pytest.approx(0.2) and max(used) == pytest.approx(0.2)
    rise = [b - a for a, b in zip(used[: peak + 1], used[1 : peak + 1])]
    fall = [b - a for a, b in zip(used[peak:], used[peak + 1 :])]
    assert all(d == pytest.approx(rise[0]) for d in rise) and rise[0] > 0  # linear up
    assert all(d == pytest.approx(fall[0]) for d in fall) and fall[0] < 0  # linear down
    assert used[-1] == pytest.approx(0.2 / ONECYCLE_DIV / 1e4)


def test_onecycle_resumed_at_an_epoch_uses_the_full_runs_later_rates(digits: pb.DataSplits) -> None:
    spec = TrainSpec(epochs=3, lr=0.1, lr_schedule="onecycle", **SMALL)
    full, later = StepLog(mlp(digits)), StepLog(mlp(digits))
    train(full.model, digits, spec, seed=0, callbacks=[full])
    train(later.model, digits, spec, seed=0, callbacks=[later], first_epoch=1)
    assert later.lrs == pytest.approx(full.lrs[6:])


def test_label_smoothing_is_the_smoothed_cross_entropy(digits: pb.DataSplits) -> None:
    model = mlp(digits)
    before = copy.deepcopy(model)
    whole = int(digits.train_x.shape[0])  # one batch of every example: its mean loss does not depend on order
    losses: list[float] = []
    train(model, digits, TrainSpec(epochs=1, lr=0.01, batch_size=whole, label_smoothing=0.2), seed=0,
          step_losses=losses)
    with torch.no_grad():
        expected = F.cross_entropy(before(digits.train_x), digits.train_y, label_smoothing=0.2)
        plain = F.cross_entropy(before(digits.train_x), digits.train_y)
    assert losses == [pytest.approx(float(expected), rel=1e-5)]
    assert abs(float(expected) - float(plain)) > 1e-3  # the check can tell the two apart


def test_the_weight_average_is_the_exponential_average_of_every_step(digits: pb.DataSplits) -> None:
    model = mlp(digits)
    log = StepLog(model)
    train(model, digits, TrainSpec(epochs=2, lr=0.1, ema_decay=0.8, **SMALL), seed=0, callbacks=[log])
    by_hand = dict(log.weights[0])  # torch's AveragedModel: the first update copies
    for weights in log.weights[1:]:
        by_hand = {k: 0.8 * by_hand[k] + 0.2 * w if w.is_floating_point() else w for k, w in weights.items()}
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, by_hand[name], rtol=1e-5, atol=1e-6)
    name = next(k for k, v in by_hand.items() if v.is_floating_point())
    assert not torch.equal(model.state_dict()[name], log.weights[-1][name])  # the average, not the last step


def assert_holds_mask(model: nn.Module, mask: pb.Mask) -> None:
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        assert torch.equal(params[name].detach() != 0, keep), name


@pytest.mark.parametrize("model_name", ["mlp", "resnet-20"])
def test_the_fast_recipe_keeps_the_mask(model_name: str, digits: pb.DataSplits) -> None:
    torch.manual_seed(0)
    model = create_model(model_name, digits.input_shape, digits.num_classes)
    pb.fit(model, digits, epochs=1, lr=0.05, batch_size=64, max_steps_per_epoch=4)
    mask = pb.prune(model, digits, "magnitude", 4)
    pb.finetune(model, digits, mask, epochs=2, lr=0.05, batch_size=64, max_steps_per_epoch=4,
                lr_schedule="onecycle", label_smoothing=0.1, ema_decay=0.9)
    assert_holds_mask(model, mask)


def test_gradual_pruning_with_a_weight_average_ends_on_its_last_mask(tmp_path: Path) -> None:
    spec, settings = build_specs({
        "dataset": "synthetic", "model": "mlp", "val_fraction": 0.5, "threads": 1,
        "train": {"epochs": 1, "batch_size": 128},
        "finetune": {"epochs": 2, "batch_size": 128, "ema_decay": 0.9},
        "prune": {"schedule": "gradual", "gradual": {"frequency": 1, "end_step": 6}},
    })
    result = run_experiment(spec, settings, tmp_path)
    weights = torch.load(tmp_path / result.run_id / "model.pt", weights_only=True)
    mask = torch.load(tmp_path / result.run_id / "mask.pt", weights_only=True)
    for name, keep in mask.items():
        assert torch.equal(weights[name] != 0, keep.bool()), name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr_schedule=onecycles",
         "train.lr_schedule: Input should be 'constant', 'cosine', 'step' or 'onecycle' (got 'onecycles')"),
        ("finetune.warmup_fraction=0.5", "finetune: warmup_fraction 0.5 is only used by lr_schedule 'onecycle', "
         "not 'constant' (leave warmup_fraction out)"),
        ("train.label_smoothing=1", "train.label_smoothing: Input should be less than 1 (got 1)"),
        ("finetune.ema_decay=0", "finetune.ema_decay: Input should be greater than 0 (got 0)"),
    ],
)
def test_bad_values_are_one_line_errors(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dataset": "synthetic", "model": "mlp"}))
    assert main(["run", str(config), override, "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"prunebench: error: {message}\n"
    assert not (tmp_path / "r").exists()
