"""(c) One MNIST training epoch: prunebench's ``train()`` vs a minimal hand-written loop.

Both train LeNet-300-100 from the same initial weights on the same in-memory tensors (54,000
training images after the 10% validation split), batch 128, SGD with momentum 0.9, lr 0.1,
one seeded permutation per epoch, then check top-1 accuracy on the 6,000 validation images
(``train()`` validates after every epoch, so the hand-written loop does too). The two loops do
the same arithmetic in the same order; the benchmark checks that their final weights match.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.common import ClockName, Result, interleaved_times, paired_ratios, quartiles, skipped
from prunebench import DataError, DataSplits, TrainSpec, create_model, load_dataset
from prunebench.data import DATA_ENV, default_data_dir
from prunebench.train import train

NAME = "epoch"
TARGET = 1.15  # prunebench epoch / hand-written epoch
FIGURE = "LeNet-300-100 MNIST epoch: train() / hand-written loop"
SEED = 0


@dataclass(frozen=True)
class Settings:
    rounds: int  # alternations of the two loops, one epoch each


FULL = Settings(rounds=7)
QUICK = Settings(rounds=2)


def hand_written_epoch(model: nn.Module, data: DataSplits, spec: TrainSpec, seed: int) -> float:
    """The loop a user would write by hand; returns validation top-1."""
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum)
    generator = torch.Generator().manual_seed(seed)
    n = data.train_x.shape[0]
    model.train()
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, spec.batch_size):
        batch = order[start : start + spec.batch_size]
        loss = F.cross_entropy(model(data.train_x[batch]), data.train_y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, data.val_x.shape[0], 1024):
            logits = model(data.val_x[start : start + 1024])
            correct += int((logits.argmax(1) == data.val_y[start : start + 1024]).sum())
    return correct / data.val_x.shape[0]


def epochs(data: DataSplits, spec: TrainSpec) -> tuple[dict[str, Callable[[], None]], dict[str, nn.Module]]:
    """Two callables that each train one epoch from the same initial weights."""
    torch.manual_seed(SEED)
    initial = create_model("lenet-300-100", data.input_shape, data.num_classes)
    models = {"prunebench": copy.deepcopy(initial), "hand-written": copy.deepcopy(initial)}
    start = copy.deepcopy(initial.state_dict())

    def prunebench_epoch() -> None:
        models["prunebench"].load_state_dict(start)
        train(models["prunebench"], data, spec, seed=SEED)

    def hand_epoch() -> None:
        models["hand-written"].load_state_dict(start)
        hand_written_epoch(models["hand-written"], data, spec, SEED)

    return {"prunebench": prunebench_epoch, "hand-written": hand_epoch}, models


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def run(quick: bool, data_dir: Path | None, clock: ClockName) -> list[Result]:
    try:
        data = load_dataset("mnist", data_dir=data_dir, download=False)
    except DataError:
        where = data_dir or default_data_dir()
        return [skipped(NAME, FIGURE, f"no MNIST under {where}/mnist (pass --data-dir or set {DATA_ENV})")]
    settings = QUICK if quick else FULL
    spec = TrainSpec(epochs=1, batch_size=128, lr=0.1, momentum=0.9)
    loops, models = epochs(data, spec)
    for loop in loops.values():  # the first epoch of a process pays one-time costs: not timed
        loop()
    times = interleaved_times(loops, settings.rounds, repeats=1, clock=clock)
    ratios = paired_ratios(times["prunebench"], times["hand-written"])
    identical = same_weights(models["prunebench"], models["hand-written"])
    seconds = {name: statistics.median(t) for name, t in times.items()}
    return [
        Result(
            benchmark=NAME,
            name=FIGURE,
            measured=statistics.median(ratios),
            target=TARGET,
            goal="<=",
            spread=quartiles(ratios),
            detail=f"median epoch {seconds['prunebench']:.2f} s vs {seconds['hand-written']:.2f} s; "
            f"{data.train_x.shape[0]:,} images, batch {spec.batch_size}, {settings.rounds} rounds; "
            f"final weights {'identical' if identical else 'DIFFER'}",
            extra={"seconds": seconds, "identical_weights": identical},
            floor=1.0,
            floor_note="train() does the hand-written loop's arithmetic; only its bookkeeping may cost more",
        )
    ]
