"""(a) Cost of keeping a model sparse while it trains: one training step, masked vs dense.

Three variants of the same model (same initial weights) train on the same batch with SGD
(momentum 0.9):

- dense: forward, backward, ``torch.optim.SGD`` step;
- prunebench: what ``train()`` does when it fine-tunes (90% of the prunable weights pruned by
  global magnitude selection): its SGD (``build_optimizer``, :class:`MaskedSGD`) takes
  ``KeepPruned``'s mask and applies it in its own update;
- re-masking: torch's SGD step, then ``KeepPruned`` re-applies the mask (its path for any
  other optimizer);
- torch.nn.utils.prune: ``global_unstructured`` with ``L1Unstructured`` at the same count,
  which recomputes ``weight = weight_orig * weight_mask`` in a forward pre-hook every step.

A second, identical dense model runs as a control: its ratio to the first shows how much of
a measured difference is noise.

Each ratio is shown beside its floor: the dense step plus the time the variant's extra memory
traffic takes at the bandwidth measured here for a buffer the size of the masked weights.
prunebench's masked update reads one float more per weight than torch's (4 bytes); the
re-masking pass reads each masked weight and its float mask and writes the weight (12 bytes);
torch's reparametrization does that multiply in the forward pass and once more for the
gradient in the backward pass (24 bytes).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune as torch_prune

from benchmarks.common import (
    ClockName, Result, interleaved_times, measure_bandwidth, paired_ratios, quartiles, repeats_for,
)
from prunebench import KeepPruned, create_model, prunable_parameters, select
from prunebench.spec import TrainSpec
from prunebench.models.mlp import MLP
from prunebench.train import build_optimizer

NAME = "step"
TARGET = 1.05  # prunebench masked step / dense step
SPARSITY = 0.9  # fraction of the prunable weights pruned
BATCH = 128
INPUT_SHAPE = (1, 28, 28)  # MNIST
CLASSES = 10


@dataclass(frozen=True)
class Settings:
    rounds: int  # alternations of the three variants
    block_seconds: float  # time each variant runs per round
    warmup_steps: int


FULL = Settings(rounds=80, block_seconds=0.03, warmup_steps=10)
QUICK = Settings(rounds=8, block_seconds=0.01, warmup_steps=3)


def models() -> dict[str, Callable[[], nn.Module]]:
    """The models measured, by the name shown in the report."""
    return {
        "LeNet-300-100": lambda: create_model("lenet-300-100", INPUT_SHAPE, CLASSES),
        "LeNet-5": lambda: create_model("lenet-5", INPUT_SHAPE, CLASSES),
        "MLP-1024-1024": lambda: MLP(784, (1024, 1024), CLASSES),
    }


def fresh(factory: Callable[[], nn.Module]) -> nn.Module:
    """Every variant starts from the same initial weights."""
    torch.manual_seed(0)
    return factory()


def prune_count(model: nn.Module) -> int:
    return round(SPARSITY * sum(p.numel() for p in prunable_parameters(model).values()))


def with_keep_pruned(model: nn.Module) -> KeepPruned:
    """prunebench: global magnitude mask, held by the re-masking callback."""
    params = prunable_parameters(model)
    keep = sum(p.numel() for p in params.values()) - prune_count(model)
    mask = select({name: p.detach().abs() for name, p in params.items()}, keep, "global")
    callback = KeepPruned(model, mask)
    callback.on_train_start()
    return callback


def with_torch_prune(model: nn.Module) -> None:
    """torch.nn.utils.prune: the same count, pruned by its global L1 method."""
    owners = [(model.get_submodule(name.rpartition(".")[0]), "weight") for name in prunable_parameters(model)]
    torch_prune.global_unstructured(owners, pruning_method=torch_prune.L1Unstructured, amount=prune_count(model))


def training_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, after: Callable[[], None] | None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Callable[[], None]:
    # The optimizer is built after pruning: torch's reparametrization renames the parameters.
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after is not None:
            after()

    return step


def variants(factory: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], None]]:
    dense = fresh(factory)
    control = fresh(factory)
    masked = fresh(factory)
    callback = with_keep_pruned(masked)
    optimizer = build_optimizer(list(masked.parameters()), TrainSpec(lr=0.01, momentum=0.9), maskable=True)
    callback.on_optimizer(optimizer)
    assert callback.in_optimizer, "the training loop's SGD did not take the mask"
    remasked = fresh(factory)
    remasking = with_keep_pruned(remasked)
    reparametrized = fresh(factory)
    with_torch_prune(reparametrized)
    return {
        "dense": training_step(dense, x, y, None),
        "prunebench": training_step(masked, x, y, lambda: callback.on_step_end(0), optimizer),
        "re-masking": training_step(remasked, x, y, lambda: remasking.on_step_end(0)),
        "torch.prune": training_step(reparametrized, x, y, None),
        "control": training_step(control, x, y, None),
    }


# Bytes per masked weight that each variant moves beyond the dense step (see the docstring).
EXTRA_BYTES = {"prunebench": 4, "re-masking": 12, "torch.prune": 24, "control": 0}

FIGURES = {
    "prunebench": "prunebench masked step / dense step",
    "re-masking": "re-masking step (any optimizer) / dense step",
    "torch.prune": "torch.nn.utils.prune step / dense step",
    "control": "dense step / dense step (control)",
}


def measure_model(
    label: str, factory: Callable[[], nn.Module], settings: Settings, clock: ClockName
) -> list[Result]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *INPUT_SHAPE, generator=generator)
    y = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    steps = variants(factory, x, y)
    masked = sum(p.numel() for p in prunable_parameters(fresh(factory)).values())
    bandwidth = measure_bandwidth(4 * masked, clock)
    for step in steps.values():
        for _ in range(settings.warmup_steps):
            step()
    repeats = repeats_for(steps["dense"], settings.block_seconds, clock)
    times = interleaved_times(steps, settings.rounds, repeats, clock)
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    results = []
    for variant, target in (("prunebench", TARGET), ("re-masking", None), ("torch.prune", None), ("control", None)):
        ratios = paired_ratios(times[variant], times["dense"])
        extra_seconds = bandwidth.seconds_for(EXTRA_BYTES[variant] * masked)
        results.append(
            Result(
                benchmark=NAME,
                name=f"{label}: {FIGURES[variant]}",
                measured=statistics.median(ratios),
                target=target,
                goal="<=" if target is not None else None,
                spread=quartiles(ratios),
                detail=f"median step {ms[variant]:.2f} ms vs dense {ms['dense']:.2f} ms; "
                f"batch {BATCH}, {settings.rounds} rounds x {repeats} steps",
                extra={
                    "step_ms": ms, "rounds": settings.rounds, "steps_per_block": repeats,
                    "bandwidth_bytes_per_s": bandwidth.bytes_per_second,
                },
                floor=1 + extra_seconds * 1e3 / ms["dense"],
                floor_note=f"dense step + {EXTRA_BYTES[variant]} B x {masked:,} masked weights "
                f"= {extra_seconds * 1e6:.0f} us at {bandwidth.text()}",
            )
        )
    return results


def run(quick: bool, clock: ClockName) -> list[Result]:
    settings = QUICK if quick else FULL
    results: list[Result] = []
    for label, factory in models().items():
        results += measure_model(label, factory, settings, clock)
    return results
