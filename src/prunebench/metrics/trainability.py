"""Trainability right after pruning (Wang et al. 2023): the singular values of the input-output
Jacobian on a fixed batch, and the training loss on that batch.

For each example x of the batch, J(x) = d logits / d x (classes x input entries); its singular
values are pooled over the batch, and their mean and standard deviation (population) are
reported. Pruning that shrinks the mean JSV has damaged how well gradients flow, which the
fine-tuning LR then decides how much of to recover.

``method`` says how they were computed: ``exact`` (torch.func: the full Jacobian of each example,
then its SVD) where the Jacobian is small enough, else ``randomized-svd-k<K>`` (Halko et al.
2011: J is sketched with K Gaussian input directions by forward-mode products and its top K
singular values are taken from that range, without oversampling or power iterations, so they
come out low). The two are different quantities and carry different names: ``jsv_mean`` /
``jsv_std`` (exact, every singular value) or ``jsv_top32_mean_approx`` / ``jsv_top32_std_approx``
(the sketch's top K = min(32, classes, input entries)); the other pair is None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap
from torch.nn import functional as F

BATCH_SIZE = 32  # the fixed batch: the first examples of the training split
MAX_EXACT_ENTRIES = 2**22  # Jacobian entries per example above which it is sketched
SKETCH_RANK = 32
SKETCH_SEED = 0


@dataclass(frozen=True)
class TrainabilityMetrics:
    jsv_mean: float | None  # exact: every singular value
    jsv_std: float | None
    method: str
    batch_loss: float
    examples: int
    jsv_top32_mean_approx: float | None = None  # sketched: the approximate top K only
    jsv_top32_std_approx: float | None = None


def _single(model: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    def forward(x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (params, buffers), (x.unsqueeze(0),)).squeeze(0).flatten()

    return forward


def exact_singular_values(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Singular values of each example's full Jacobian, (examples, min(classes, inputs))."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    forward = _single(model, params, buffers)
    try:
        jacobians = vmap(jacrev(forward))(x)  # (examples, classes, *input)
    except (RuntimeError, NotImplementedError):  # a model vmap cannot batch: one example at a time
        jacobians = torch.stack([jacrev(forward)(example) for example in x])
    return torch.linalg.svdvals(jacobians.flatten(2))


def sketched_singular_values(model: nn.Module, x: torch.Tensor, rank: int, generator: torch.Generator) -> torch.Tensor:
    """Top ``rank`` singular values of each example's Jacobian by a randomized range finder."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    forward = _single(model, params, buffers)
    values = []
    for example in x:
        directions = torch.randn((rank, *example.shape), generator=generator).to(example)
        sketch = torch.stack([jvp(forward, (example,), (d,))[1] for d in directions], dim=1)  # J @ Omega
        basis, _ = torch.linalg.qr(sketch)  # (classes, <= rank)
        _, pullback = vjp(forward, example)
        projected = torch.stack([pullback(q)[0].flatten() for q in basis.T])  # Q^T J
        values.append(torch.linalg.svdvals(projected))
    return torch.stack(values)


def jacobian_singular_values(
    model: nn.Module, x: torch.Tensor, *, max_exact: int = MAX_EXACT_ENTRIES, rank: int = SKETCH_RANK,
) -> tuple[torch.Tensor, str]:
    """The pooled singular values of the input-output Jacobians of ``x``'s examples, and the
    method used. Eval mode; the model's mode, gradients and the global RNG are left as found."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            classes = model(x[:1]).flatten().numel()
        inputs = x[0].numel()
        if classes * inputs <= max_exact:
            return exact_singular_values(model, x).flatten(), "exact"
        rank = min(rank, classes, inputs)
        generator = torch.Generator().manual_seed(SKETCH_SEED)
        return sketched_singular_values(model, x, rank, generator).flatten(), f"randomized-svd-k{rank}"
    finally:
        model.train(was_training)


def trainability(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_exact: int = MAX_EXACT_ENTRIES,
) -> TrainabilityMetrics | None:
    """Mean and spread of the Jacobian singular values and the cross-entropy on (x, y); None
    where the input is not continuous (token ids have no input Jacobian)."""
    if not x.is_floating_point():
        return None
    values, method = jacobian_singular_values(model, x, max_exact=max_exact)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            loss = float(F.cross_entropy(model(x), y))
    finally:
        model.train(was_training)
    mean = float(values.mean())
    std = float(values.std(unbiased=False))  # population spread of the pooled values
    if method == "exact":
        return TrainabilityMetrics(jsv_mean=mean, jsv_std=std, method=method, batch_loss=loss, examples=x.shape[0])
    return TrainabilityMetrics(jsv_mean=None, jsv_std=None, method=method, batch_loss=loss, examples=x.shape[0],
                               jsv_top32_mean_approx=mean, jsv_top32_std_approx=std)


def fixed_batch(train_x: torch.Tensor, train_y: torch.Tensor, size: int = BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """The same batch for every run of a seed: the first ``size`` training examples."""
    return train_x[:size], train_y[:size]
