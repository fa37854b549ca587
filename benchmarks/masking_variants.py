"""Ways to keep pruned weights at zero during a training step, timed against the dense step.

The step benchmark (``step_overhead.py``) measures what ``KeepPruned`` does: after every
optimizer step, one ``torch._foreach_mul_`` of the masked weights by float masks, 12 bytes a
weight. This script times the alternatives that could move fewer bytes, on the same step
(batch 128 of MNIST-shaped inputs, SGD with momentum 0.9, 90% of the hidden weights pruned):

- ``masked-sgd``: prunebench's SGD for fine-tuning (``MaskedSGD``), the mask applied in its
  own update, ``param.addcmul_(update, keep * -lr)``;
- ``foreach``: KeepPruned's multiply by float masks after the step (its path for any optimizer);
- ``grad-hook``: the gradient masked in a tensor hook while backward runs (it is hot in cache);
- ``post-accumulate``: the gradient masked in a post-accumulate-grad hook;
- ``bool-mul``: ``mul_`` by boolean masks (1 byte a weight);
- ``masked-fill``: ``masked_fill_`` with the inverted boolean masks;
- ``where``: ``torch.where(mask, w, 0, out=w)``.

Masking the gradient is equivalent to masking the weight for SGD (and Adam, AdamW) when the
optimizer state starts at zero on the pruned entries; every variant is checked to leave the
pruned weights at exactly zero. ``--compiled`` also times a ``torch.compile``d boolean multiply
of the weights alone against the foreach multiply. ``--optimizer-step`` times the optimizer step alone, torch's SGD against ``MaskedSGD`` holding
the mask, on the same gradients. ``--rounding`` checks whether folding the
mask into SGD's update rounds like torch's own update, both ways: ``addcmul_`` by the boolean
mask with ``value=-lr``, and by a tensor holding ``-lr`` (``MaskedSGD``'s way).

    PYTHONPATH=src python benchmarks/masking_variants.py --rounds 60 --compiled --rounding --optimizer-step
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from prunebench import create_model
from prunebench.metrics.roofline import median_seconds
from prunebench.models.mlp import MLP
from prunebench.pruning.masked_sgd import MaskedSGD

VARIANTS = ("dense", "control", "masked-sgd", "foreach", "grad-hook", "post-accumulate", "bool-mul", "masked-fill", "where")
MODELS: dict[str, Callable[[], nn.Module]] = {
    "MLP-1024-1024": lambda: MLP(784, (1024, 1024), 10),
    "LeNet-300-100": lambda: create_model("lenet-300-100", (1, 28, 28), 10),
}


def mask_grad(keep: torch.Tensor) -> Callable[[torch.Tensor], None]:
    def hook(param: torch.Tensor) -> None:
        assert param.grad is not None
        param.grad.mul_(keep)

    return hook


def masked_step(factory: Callable[[], nn.Module], variant: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One training step of a fresh copy of the model (same initial weights), masked as ``variant``."""
    torch.manual_seed(0)
    model = factory()
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)][:-1]  # the classifier stays dense
    generator = torch.Generator().manual_seed(1)
    keep = [torch.rand(w.shape, generator=generator) > 0.9 for w in weights]
    floats = [k.float() for k in keep]
    pruned = [~k for k in keep]
    zero = torch.zeros(())
    with torch.no_grad():
        for w, k in zip(weights, keep):
            w.mul_(k)
    optimizer = (MaskedSGD if variant == "masked-sgd" else torch.optim.SGD)(model.parameters(), lr=0.01, momentum=0.9)
    if variant == "masked-sgd":
        assert isinstance(optimizer, MaskedSGD) and optimizer.hold(dict(zip(weights, keep)))
    if variant == "grad-hook":
        for w, f in zip(weights, floats):
            w.register_hook(lambda g, f=f: g.mul_(f))
    if variant == "post-accumulate":
        for w, f in zip(weights, floats):
            w.register_post_accumulate_grad_hook(mask_grad(f))

    @torch.no_grad()
    def remask() -> None:
        if variant == "foreach":
            torch._foreach_mul_(weights, floats)
        elif variant == "bool-mul":
            for w, k in zip(weights, keep):
                w.mul_(k)
        elif variant == "masked-fill":
            for w, p in zip(weights, pruned):
                w.masked_fill_(p, 0)
        elif variant == "where":
            for w, k in zip(weights, keep):
                torch.where(k, w, zero, out=w)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        remask()

    for _ in range(5):
        step()
    if variant not in ("dense", "control"):
        leaked = sum(int((w[~k] != 0).sum()) for w, k in zip(weights, keep))
        assert leaked == 0, f"{variant}: {leaked} pruned weights moved"
    return step


def ratios(factory: Callable[[], nn.Module], rounds: int, steps: int) -> dict[str, list[float]]:
    """Per round, each variant's CPU time for ``steps`` steps over the dense step's; order rotates."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 1, 28, 28, generator=generator), torch.randint(0, 10, (128,), generator=generator)
    calls = {v: masked_step(factory, v, x, y) for v in VARIANTS}
    out: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]
        seconds = {}
        for v in order:
            start = time.process_time()
            for _ in range(steps):
                calls[v]()
            seconds[v] = time.process_time() - start
        for v in VARIANTS:
            out[v].append(seconds[v] / seconds["dense"])
    return out


def compiled_against_foreach(repeats: int = 30) -> tuple[float, float]:
    """Median ms of the MLP's two masked weights multiplied by a compiled boolean mask, and by
    the foreach float multiply."""
    weights = [torch.randn(1024, 784), torch.randn(1024, 1024)]
    keep = [torch.rand(w.shape) > 0.9 for w in weights]
    floats = [k.float() for k in keep]

    def bool_mul(ws: list[torch.Tensor], ks: list[torch.Tensor]) -> None:
        for w, k in zip(ws, ks):
            w.mul_(k)

    compiled = torch.compile(bool_mul, fullgraph=True, dynamic=False)
    calls = {"compiled": lambda: compiled(weights, keep), "foreach": lambda: torch._foreach_mul_(weights, floats)}
    medians = {name: median_seconds(call, warmup=5, repeats=repeats) * 1e3 for name, call in calls.items()}
    return medians["compiled"], medians["foreach"]


def optimizer_steps(factory: Callable[[], nn.Module], steps: int, rounds: int = 30) -> tuple[float, float]:
    """Median microseconds of one ``torch.optim.SGD`` step and one ``MaskedSGD`` step holding the
    hidden weights' masks, timed in turns on fixed gradients (process CPU time)."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 1, 28, 28, generator=generator), torch.randint(0, 10, (128,), generator=generator)
    optimizers = {}
    for kind in ("torch", "masked"):
        torch.manual_seed(0)
        model = factory()
        F.cross_entropy(model(x), y).backward()
        optimizer = (MaskedSGD if kind == "masked" else torch.optim.SGD)(model.parameters(), lr=0.01, momentum=0.9)
        if isinstance(optimizer, MaskedSGD):
            weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)][:-1]
            assert optimizer.hold({w: torch.rand(w.shape, generator=generator) > 0.9 for w in weights})
        optimizers[kind] = optimizer
    times: dict[str, list[float]] = {kind: [] for kind in optimizers}
    for optimizer in optimizers.values():
        for _ in range(5):
            optimizer.step()
    for _ in range(rounds):
        for kind, optimizer in optimizers.items():
            start = time.process_time()
            for _ in range(steps):
                optimizer.step()
            times[kind].append((time.process_time() - start) / steps * 1e6)
    return statistics.median(times["torch"]), statistics.median(times["masked"])


def rounding_differences(n: int = 1 << 20) -> tuple[int, int, int]:
    """Survivors whose update differs from SGD's ``p.add_(buf, alpha=-lr)`` when the mask is folded
    in as ``addcmul_(buf, keep, value=-lr)`` and as ``addcmul_(buf, keep * -lr)``; survivors."""
    generator = torch.Generator().manual_seed(0)
    p, buf = torch.randn(n, generator=generator), torch.randn(n, generator=generator)
    keep = torch.rand(n, generator=generator) > 0.5
    torch_update = p.clone().add_(buf, alpha=-0.01)
    by_value = p.clone().addcmul_(buf, keep.float(), value=-0.01)
    by_tensor = p.clone().addcmul_(buf, keep.float().mul_(-0.01))
    differ = [int((torch_update[keep] != folded[keep]).sum()) for folded in (by_value, by_tensor)]
    return differ[0], differ[1], int(keep.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--compiled", action="store_true")
    parser.add_argument("--rounding", action="store_true")
    parser.add_argument("--optimizer-step", action="store_true")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error(f"--rounds must be at least 2 (quartiles need two rounds), got {args.rounds}")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print(f"torch {torch.__version__}, 1 thread, process CPU time, {args.rounds} rounds")
        print("| variant | " + " | ".join(MODELS) + " |")
        print("|---|" + "---|" * len(MODELS))
        results = {label: ratios(factory, args.rounds, 30 if label.startswith("MLP") else 100)
                   for label, factory in MODELS.items()}
        for v in VARIANTS[1:]:
            cells = []
            for label in MODELS:
                q = statistics.quantiles(results[label][v], n=4)
                cells.append(f"{statistics.median(results[label][v]):.3f}x [{q[0]:.3f}-{q[2]:.3f}]")
            print(f"| {v} | " + " | ".join(cells) + " |")
        if args.compiled:
            compiled, foreach = compiled_against_foreach()
            print(f"compiled boolean multiply {compiled:.2f} ms, foreach float multiply {foreach:.2f} ms")
        if args.optimizer_step:
            for label, factory in MODELS.items():
                plain, masked = optimizer_steps(factory, 20 if label.startswith("MLP") else 200)
                print(f"{label}: torch.optim.SGD step {plain:.0f} us, MaskedSGD step holding the mask {masked:.0f} us")
        if args.rounding:
            by_value, by_tensor, survivors = rounding_differences()
            print(f"mask folded into SGD's update, of {survivors:,} survivors: {by_value:,} round differently with "
                  f"addcmul_(buf, keep, value=-lr), {by_tensor:,} with addcmul_(buf, keep * -lr)")
    finally:
        torch.set_num_threads(previous)


if __name__ == "__main__":
    main()
