"""Second-order saliencies: Optimal Brain Damage (LeCun, Denker & Solla 1989, "Optimal Brain
Damage", NIPS 2) and layer-wise Optimal Brain Surgeon (Hassibi & Stork 1992, "Second order
derivatives for network pruning: Optimal Brain Surgeon", NIPS 5).

OBD models the loss change of deleting weight q by the second-order Taylor expansion at a trained
minimum (gradient term dropped) with a diagonal Hessian: s_q = 1/2 h_qq w_q^2. The diagonal is
estimated from the training batches ``prune.score_batches`` by the estimator named in
``prune.options.estimator``.

OBS keeps the whole Hessian, per layer as in Optimal Brain Compression (Frantar & Alistarh 2022)
and SparseGPT: the loss of a Linear or convolution is its output reconstruction error, whose
Hessian is that of its inputs, and the remaining weights of each row are moved to compensate.
The mathematics is :mod:`prunebench.pruning.obs`, shared with SparseGPT. OBS is one method for
both model kinds: on a causal language model it prunes each decoder-block Linear from the
Hessian of its calibration inputs (the driver's statistics), with the same saliency and update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call, grad, jvp, vmap
from torch.nn import functional as F

from prunebench.errors import ConfigError
from prunebench.pruning.obs import add_to_hessian, damped_inverse, obs_update
from prunebench.pruning.scores.base import (
    Batch, LayerPruner, LayerStatistics, ScoreInputs, Scores, eval_mode, module_of, register_scorer,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Per-example gradients are computed this many floats at a time (chunk of examples x parameters),
# so a large model does not hold one gradient copy per example of a batch at once.
PER_EXAMPLE_FLOATS = 1 << 25


@dataclass(frozen=True)
class ObdOptions:
    """How the Hessian diagonal is estimated.

    - ``fisher`` (default): the empirical Fisher diagonal (1/N) sum_n (dl_n/dw)^2 over every
      example of the scoring batches. LeCun et al. compute h_qq by back-propagating second
      derivatives with the Levenberg-Marquardt (Gauss-Newton) approximation, which drops the
      second derivatives of the non-linearities and so keeps every h_qq >= 0; the Fisher is the
      same kind of positive curvature (for softmax cross-entropy the Gauss-Newton matrix is the
      Fisher, which the empirical Fisher estimates from the data's labels), costs one
      per-example gradient pass, and is the estimate later OBD/OBS pruning work uses (Theis et
      al. 2018 "Faster gaze prediction with dense networks and Fisher pruning"; Singh & Alistarh
      2020 "WoodFisher").
    - ``hutchinson``: the exact Hessian diagonal estimated as E[z * Hz] with Rademacher z
      (Bekas, Kokiopoulou & Saad 2007), ``probes`` vectors per scoring batch, Hz by forward-over-
      reverse differentiation (torch.func). Unbiased but noisy; where the loss curves downwards along a weight, h_qq and so
      the saliency can be negative (such weights are pruned first: the quadratic model says
      removing them lowers the loss).
    """

    estimator: Literal["fisher", "hutchinson"] = "fisher"
    probes: Annotated[int, Field(ge=1)] = 8  # hutchinson only: Rademacher vectors per batch


def fisher_diagonal(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Sequence[Batch], loss_fn: LossFn
) -> dict[str, torch.Tensor]:
    """(1/N) sum_n (dl_n/dw)^2 over every example n of ``batches`` (per-example gradients by vmap).

    ``loss_fn`` is applied to one example at a time (a batch of one), so a mean-reduced loss is
    that example's loss. Run it with the model in eval mode (batch norm on running statistics).
    """
    names = list(params)
    fixed = {n: t.detach() for n, t in (*model.named_parameters(), *model.named_buffers()) if n not in params}

    def example_loss(weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, {**fixed, **weights}, (x.unsqueeze(0),)), y.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    weights = {n: params[n].detach() for n in names}
    chunk = max(1, PER_EXAMPLE_FLOATS // max(1, sum(w.numel() for w in weights.values())))
    totals = {n: torch.zeros_like(w) for n, w in weights.items()}
    count = 0
    for x, y in batches:
        for start in range(0, x.shape[0], chunk):
            grads = per_example(weights, x[start : start + chunk], y[start : start + chunk])
            for n in names:
                totals[n].add_(grads[n].square().sum(0))
        count += x.shape[0]
    return {n: total / count for n, total in totals.items()}


def hessian_vector_products(
    model: nn.Module, params: Mapping[str, nn.Parameter], batch: Batch, loss_fn: LossFn,
    vectors: Sequence[dict[str, torch.Tensor]],
) -> list[dict[str, torch.Tensor]]:
    """H v for each of ``vectors``, H the Hessian of the mean loss on ``batch``: forward-mode over
    reverse-mode differentiation, vectorized over the vectors (never H itself)."""
    names = list(params)
    fixed = {n: t.detach() for n, t in (*model.named_parameters(), *model.named_buffers()) if n not in params}
    weights = {n: params[n].detach() for n in names}
    x, y = batch

    def batch_loss(w: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(model, {**fixed, **w}, (x,)), y)

    def product(v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return jvp(grad(batch_loss), (weights,), (v,))[1]

    chunk = max(1, PER_EXAMPLE_FLOATS // max(1, sum(w.numel() for w in weights.values())))
    products: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        stacked = vmap(product)({n: torch.stack([v[n] for v in part]) for n in names})
        products += [{n: stacked[n][i] for n in names} for i in range(len(part))]
    return products


def rademacher(params: Mapping[str, nn.Parameter], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Independent +-1 entries, drawn on the CPU from ``generator`` (the same on every device)."""
    return {
        n: (torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(device=p.device, dtype=p.dtype)
        for n, p in params.items()
    }


def hutchinson_diagonal(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Sequence[Batch], loss_fn: LossFn,
    probes: Sequence[Sequence[dict[str, torch.Tensor]]],
) -> dict[str, torch.Tensor]:
    """mean over batches and their probe vectors z of z * (H_batch z): E[z * Hz] = diag H for
    Rademacher z. ``probes[i]`` are batch i's vectors; all 2^n sign vectors give diag H exactly."""
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for batch, vectors in zip(batches, probes, strict=True):
        for z, hz in zip(vectors, hessian_vector_products(model, params, batch, loss_fn, vectors)):
            for n in totals:
                totals[n].add_(z[n] * hz[n])
            count += 1
    return {n: total / count for n, total in totals.items()}


def hessian_diagonal(inputs: ScoreInputs, options: ObdOptions) -> dict[str, torch.Tensor]:
    """The estimate ``options.estimator`` names, on the model in eval mode (mode restored)."""
    if not inputs.batches:
        raise ValueError("obd needs at least one training batch")
    with eval_mode(inputs.model):
        if options.estimator == "fisher":
            return fisher_diagonal(inputs.model, inputs.params, inputs.batches, inputs.loss_fn)
        probes = [[rademacher(inputs.params, inputs.generator) for _ in range(options.probes)] for _ in inputs.batches]
        return hutchinson_diagonal(inputs.model, inputs.params, inputs.batches, inputs.loss_fn, probes)


@register_scorer("obd", ObdOptions)
def obd(inputs: ScoreInputs, options: ObdOptions) -> Scores:
    """LeCun et al. 1989, Optimal Brain Damage: 1/2 h_qq w_q^2 with the Hessian diagonal h estimated
    from the scoring batches (``estimator``: fisher, the default, or hutchinson)."""
    diagonal = hessian_diagonal(inputs, options)
    return {name: 0.5 * diagonal[name] * p.detach().square() for name, p in inputs.params.items()}


@dataclass(frozen=True)
class ObsOptions:
    """``percdamp``: the dampening d = percdamp x mean(diag H) added to H's diagonal before it is
    inverted, 0.01 as in Optimal Brain Compression and SparseGPT (a layer's inputs are often
    collinear, so X X^T alone can be singular)."""

    percdamp: Annotated[float, Field(ge=0)] = 0.01


LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def layer_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's inputs as rows of what each weight row multiplies: ``(groups, rows, in)``.

    A Linear's rows are its input vectors; a convolution's are its unfolded patches (one per
    output position), in the order of ``weight[out].flatten()``, split by convolution group."""
    if isinstance(module, nn.Linear):
        return x.reshape(1, -1, x.shape[-1])
    assert isinstance(module, (nn.Conv1d, nn.Conv2d))
    if module.padding_mode != "zeros":
        raise ConfigError(f"obs does not support padding_mode {module.padding_mode!r} convolutions (allowed: zeros)")
    if isinstance(module, nn.Conv1d):  # a Conv1d is a Conv2d of height 1
        x = x.unsqueeze(2)
        kernel, dilation, padding, stride = ((1, *module.kernel_size), (1, *module.dilation),
                                             (0, *module.padding), (1, *module.stride))
    else:
        kernel, dilation, padding, stride = module.kernel_size, module.dilation, module.padding, module.stride
    if isinstance(padding, str):
        raise ConfigError(f"obs does not support padding={padding!r} convolutions (give the padding as numbers)")
    patches = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (N, C*k, L)
    n, width, positions = patches.shape
    per_group = patches.view(n, module.groups, width // module.groups, positions)
    return per_group.permute(1, 0, 3, 2).reshape(module.groups, n * positions, width // module.groups)


def layer_hessians(
    model: nn.Module, modules: Mapping[str, nn.Module], batches: Sequence[Batch]
) -> dict[str, list[torch.Tensor]]:
    """H = 2/n X X^T of each module's inputs over ``batches``, one per convolution group."""
    found: dict[str, tuple[list[torch.Tensor | None], int]] = {name: ([None] * getattr(m, "groups", 1), 0) for name, m in modules.items()}

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            hessians, count = found[name]
            rows = layer_rows(module, args[0].detach())
            updated = [add_to_hessian(h, r, count) for h, r in zip(hessians, rows)]
            found[name] = ([h for h, _ in updated], updated[0][1])

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    try:
        with torch.no_grad(), eval_mode(model):
            for x, _ in batches:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: [h for h in hessians if h is not None] for name, (hessians, _) in found.items()}


def layer_weights(inputs: ScoreInputs) -> dict[str, tuple[str, nn.Module]]:
    """Prunable parameter -> (module name, module) for the weights OBS models (Linear, Conv1d/2d)."""
    found = {}
    for name in inputs.params:
        module, attr = module_of(inputs.model, name)
        if attr == "weight" and isinstance(module, LAYERS):
            found[name] = (name.rpartition(".")[0], module)
        elif attr == "weight" and isinstance(module, nn.modules.conv._ConvNd):
            raise ConfigError(f"obs models Linear, Conv1d and Conv2d weights, not {type(module).__name__} ({name})")
    return found


def grouped_rows(weight: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """The weight as (out, in) matrices, one per convolution group (views)."""
    flat = weight.reshape(weight.shape[0], -1)
    return list(flat.chunk(groups, dim=0))


def inverse_of(h: torch.Tensor, percdamp: float, layer: str) -> torch.Tensor:
    """The dampened inverse, or a one-line error where it does not exist (too little dampening)."""
    try:
        return damped_inverse(h, percdamp)
    except torch.linalg.LinAlgError:
        raise ConfigError(
            f"prune.options.percdamp: {percdamp} leaves the Hessian of {layer}'s inputs singular (strategy obs; "
            "allowed: a larger value, e.g. the default 0.01)"
        ) from None


def hessians_of(inputs: ScoreInputs) -> tuple[dict[str, tuple[str, nn.Module]], dict[str, list[torch.Tensor]]]:
    if not inputs.batches:
        raise ValueError("obs needs at least one training batch")
    layers = layer_weights(inputs)
    return layers, layer_hessians(inputs.model, dict(layers.values()), inputs.batches)


def obs_compensate(inputs: ScoreInputs, keep: Mapping[str, torch.Tensor], options: ObsOptions) -> None:
    """The exact multi-weight OBS update of every row for the selected ``keep`` (in place):
    the minimiser of the layer's dampened reconstruction error with the pruned weights at zero.
    Run on the weights as they were scored, so the Hessians are those the scores used."""
    layers, hessians = hessians_of(inputs)
    for name, (module_name, module) in layers.items():
        p = inputs.params[name]
        groups = getattr(module, "groups", 1)
        kept = grouped_rows(keep[name].to(p.device), groups)
        new = [
            obs_update(w, inverse_of(h, options.percdamp, module_name).to(w.device), k)
            for w, k, h in zip(grouped_rows(p.detach(), groups), kept, hessians[module_name])
        ]
        p.copy_(torch.cat(new).view_as(p))


def linear_inverse(weight: torch.Tensor, stats: LayerStatistics, options: ObsOptions) -> torch.Tensor:
    """The dampened inverse Hessian of one language-model Linear's calibration inputs."""
    if stats.hessian is None:
        raise ValueError("obs needs the input Hessian of each layer")
    return inverse_of(stats.hessian.to(weight.device), options.percdamp, "a decoder-block Linear")


def obs_linear_scores(weight: torch.Tensor, stats: LayerStatistics, options: ObsOptions,
                      generator: torch.Generator) -> torch.Tensor:
    return weight.detach().to(torch.float32).square() / (2 * torch.diagonal(linear_inverse(weight, stats, options)))


def obs_linear_update(weight: torch.Tensor, stats: LayerStatistics, keep: torch.Tensor, options: ObsOptions) -> torch.Tensor:
    return obs_update(weight, linear_inverse(weight, stats, options), keep)


# Per Linear of a language model: the same saliency from the calibration Hessian, the driver's
# selection (per layer by default, as for classifiers), then the exact update of every row.
OBS_LM = LayerPruner("OBS per Linear: w^2 / (2 [H^-1]_qq) from the calibration Hessian, then the exact update",
                     "hessian", ("layer", "row"), score=obs_linear_scores, update=obs_linear_update)


# Layer-local: a saliency is the increase of one layer's output reconstruction error, in that
# layer's own units (rescaling a layer and undoing it in the next changes the scores of one and
# not the other, but not the network), so OBS prunes per layer and refuses scope global.
@register_scorer("obs", ObsOptions, update=obs_compensate, layer=OBS_LM, comparable=False)
def obs(inputs: ScoreInputs, options: ObsOptions) -> Scores:
    """Hassibi & Stork 1992, Optimal Brain Surgeon, layer-wise: w_q^2 / (2 [H^-1]_qq) with H = 2/n X X^T
    of the layer's inputs (dampened), then the remaining weights of each row compensate.

    Weights of Linear, Conv1d and Conv2d layers (convolutions through their unfolded inputs).
    Other prunable parameters (biases, when included) score b^2, the saliency of a weight on a
    constant input of 1 taken on its own, and are not compensated.
    """
    layers, hessians = hessians_of(inputs)
    scores: Scores = {}
    for name, p in inputs.params.items():
        if name not in layers:
            scores[name] = p.detach().square()
            continue
        _, module = layers[name]
        rows = grouped_rows(p.detach(), getattr(module, "groups", 1))
        diagonals = [torch.diagonal(inverse_of(h, options.percdamp, layers[name][0])) for h in hessians[layers[name][0]]]
        per_group = [w.square() / (2 * d.to(w.device)) for w, d in zip(rows, diagonals)]
        scores[name] = torch.cat(per_group).view_as(p).to(p.dtype)
    return scores
