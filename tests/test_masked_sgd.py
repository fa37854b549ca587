"""MaskedSGD: torch's SGD, and with a mask held, bit for bit torch's SGD followed by re-masking."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunebench import KeepPruned, Mask
from prunebench.spec import TrainSpec
from prunebench.data import DataSplits
from prunebench.pruning.masked_sgd import MaskedSGD
from prunebench.train import train

SETTINGS = [
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    {"lr": 0.01, "momentum": 0.0, "weight_decay": 1e-4},
    {"lr": 0.02, "momentum": 0.5, "dampening": 0.1, "maximize": True},
]


def model_and_mask() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(37, 65), nn.ReLU(), nn.Linear(65, 10))
    generator = torch.Generator().manual_seed(1)
    keep = {name: torch.rand(p.shape, generator=generator) > 0.7
            for name, p in model.named_parameters() if name.endswith("weight")}
    return model, keep


def run(optimizer_kind: str, settings: dict, held: bool, steps: int = 6) -> tuple[dict, list[torch.Tensor]]:
    """``steps`` steps on fixed batches, the learning rate changed halfway; final weights and
    momentum buffers. ``held`` masks through MaskedSGD.hold, else by re-masking after each step."""
    model, keep = model_and_mask()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, k in keep.items():
            params[name].mul_(k)
    cls = MaskedSGD if optimizer_kind == "masked" else torch.optim.SGD
    optimizer = cls(model.parameters(), **settings)
    if held:
        assert isinstance(optimizer, MaskedSGD) and optimizer.hold({params[n]: k for n, k in keep.items()})
    generator = torch.Generator().manual_seed(2)
    for step in range(steps):
        if step == steps // 2:
            for group in optimizer.param_groups:
                group["lr"] *= 0.3
        x, y = torch.randn(16, 37, generator=generator), torch.randint(0, 10, (16,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if optimizer_kind == "torch-remask":
            with torch.no_grad():
                torch._foreach_mul_([params[n] for n in keep], [k.float() for k in keep.values()])
    buffers = [optimizer.state[p].get("momentum_buffer", torch.zeros(0)) for p in model.parameters()]
    return {n: p.detach().clone() for n, p in model.named_parameters()}, buffers


@pytest.mark.parametrize("settings", SETTINGS)
def test_its_step_is_torch_sgds(settings: dict) -> None:
    """With nothing held, every parameter's update is torch.optim.SGD's, bit for bit."""
    ours, our_buffers = run("masked", settings, held=False)
    torch_weights, torch_buffers = run("dense", settings, held=False)
    assert all(torch.equal(ours[n], torch_weights[n]) for n in ours)
    assert all(torch.equal(a, b) for a, b in zip(our_buffers, torch_buffers))


@pytest.mark.parametrize("settings", SETTINGS)
def test_a_held_mask_equals_torch_sgd_then_remasking_bit_for_bit(settings: dict) -> None:
    held, held_buffers = run("masked", settings, held=True)
    remasked, remasked_buffers = run("torch-remask", settings, held=False)
    for name in held:
        assert torch.equal(held[name], remasked[name]), name
    assert all(torch.equal(a, b) for a, b in zip(held_buffers, remasked_buffers))
    _, keep = model_and_mask()
    for name, k in keep.items():
        assert int((held[name][~k] != 0).sum()) == 0  # pruned entries exactly zero
        assert int((held[name][k] == 0).sum()) == 0  # survivors moved


def test_hold_refuses_what_the_exact_path_does_not_cover() -> None:
    model, keep = model_and_mask()
    params = dict(model.named_parameters())
    masks = {params[n]: k for n, k in keep.items()}
    assert not MaskedSGD(model.parameters(), lr=0.1, foreach=True).hold(masks)
    assert not MaskedSGD([params["0.bias"]], lr=0.1).hold(masks)  # parameters it does not update
    assert not MaskedSGD(model.parameters(), lr=0.1).hold({params["0.weight"]: keep["2.weight"]})  # shape
    assert MaskedSGD(model.parameters(), lr=0.1).hold(masks)


def test_the_training_loop_builds_it_only_for_a_masking_callback() -> None:
    from prunebench.train import build_optimizer

    model, _ = model_and_mask()
    spec = TrainSpec(lr=0.1)
    assert type(build_optimizer(list(model.parameters()), spec)) is torch.optim.SGD
    assert type(build_optimizer(list(model.parameters()), spec, maskable=True)) is MaskedSGD
    assert type(build_optimizer(list(model.parameters()), TrainSpec(optimizer="adam"), maskable=True)) is torch.optim.Adam


def tiny_data() -> DataSplits:
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(96, 37, generator=generator), torch.randint(0, 10, (96,), generator=generator)
    return DataSplits.from_tensors(train=(x[:64], y[:64]), test=(x[64:], y[64:]), num_classes=10)


def test_training_with_the_mask_in_the_optimizer_equals_remasking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training loop hands KeepPruned's mask to its SGD; the trained model is bit for bit the
    one re-masking after every step gives (the path taken where the optimizer refuses)."""
    spec = TrainSpec(epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=16, lr_schedule="cosine")

    def trained(fold: bool) -> tuple[dict[str, torch.Tensor], bool]:
        model, keep = model_and_mask()
        callback = KeepPruned(model, Mask({n: keep.get(n, torch.ones_like(p, dtype=torch.bool))
                                           for n, p in model.named_parameters()}))
        if not fold:
            monkeypatch.setattr(MaskedSGD, "hold", lambda self, masks: False)
        train(model, tiny_data(), spec, seed=0, callbacks=[callback])
        monkeypatch.undo()
        return {n: p.detach().clone() for n, p in model.named_parameters()}, callback.in_optimizer

    folded, in_optimizer = trained(fold=True)
    remasked, not_in_optimizer = trained(fold=False)
    assert in_optimizer and not not_in_optimizer
    assert all(torch.equal(folded[n], remasked[n]) for n in folded)
    _, keep = model_and_mask()
    assert all(int((folded[n][~k] != 0).sum()) == 0 for n, k in keep.items())


class SeesOptimizer:
    """A callback that records the optimizer it is handed; it declares whether it masks."""

    def __init__(self, hands_mask: bool) -> None:
        self.hands_mask_to_optimizer = hands_mask
        self.optimizer: torch.optim.Optimizer | None = None

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def on_train_start(self) -> None:
        pass

    def on_step_end(self, step: int) -> None:
        pass


@pytest.mark.parametrize("hands_mask", [False, True])
def test_the_loop_reads_the_declared_hook_not_the_callbacks_attributes(hands_mask: bool) -> None:
    """Every callback gets on_optimizer; only a declared mask-handing callback makes the loop build
    the SGD that takes a mask (a callback with an on_optimizer method alone does not)."""
    model, _ = model_and_mask()
    seer = SeesOptimizer(hands_mask)
    train(model, tiny_data(), TrainSpec(lr=0.1, epochs=1, batch_size=32), seed=0, callbacks=[seer])
    assert seer.optimizer is not None
    assert type(seer.optimizer) is (MaskedSGD if hands_mask else torch.optim.SGD)
