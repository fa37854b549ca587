"""Channel pruning by reconstruction: He et al. 2017's LASSO selection and ThiNet's greedy one,
each followed by a least-squares update of the layers that read the pruned channels.

Both look at the *consumers* of a channel group: the Conv2d (ungrouped) and Linear layers that
read its channels (the "in" slices of the group; several of them for a residual stream). From
the training batches each consumer's inputs are sampled (a few random patches per image for a
convolution, every example for a Linear layer) and reduced to their Gram matrix, so any number
of samples costs the same memory.

How the methods meet the shared selection (:mod:`prunebench.pruning.channels.select`): scoring
comes before the counts per layer are known, so each method gives, per group, the *order* in
which it removes channels (LASSO: the order in which channels reach zero as the penalty grows;
ThiNet: its greedy removal order). A channel's score is the reconstruction error the group's
consumers are left with, after least squares on the dense network's features, once that
channel and every channel before it in the order are gone, relative to the consumers' output
variance (made strictly increasing along the order). So with ``scope: layer`` any count per
layer takes a prefix of the method's order, i.e. exactly the method's own choice for that
count; with ``scope: global`` channels of different layers are compared by that relative
error, the quantity both papers minimize, on one scale for every layer.

After selection, :func:`reconstruct` rewrites each consumer's kept weights and bias by least
squares so that, fed the pruned network's inputs (upstream pruning and reconstruction
included: He et al.'s accumulated-error variant), it reproduces the unpruned network's output.
It runs on the model before the channel mask is applied (it needs the pruned channels'
weights for the targets); the mask is applied after it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field as PydanticField
from torch import nn
from torch.nn import functional as F

from prunebench.errors import ConfigError
from prunebench.modes import eval_mode
from prunebench.pruning.channels.graph import Batch, ChannelGraph, ChannelGroup, ChannelSlice
from prunebench.pruning.channels.scorers import ChannelScoreInputs, register_channel_scorer
from prunebench.pruning.channels.select import build_mask

RIDGE = 1e-10  # relative to the mean diagonal: keeps a Gram with dead or zero inputs solvable


@dataclass(frozen=True)
class ChannelLassoOptions:
    """He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural Networks".

    ``patches_per_image``: random output locations sampled per image for a convolution (the
    paper samples 10 per image, from 5000 training images; here the images are the
    ``prune.score_batches`` x ``prune.batch_size`` scoring batches). The penalty search: the
    paper starts at lambda = 0 and increases lambda step by step until no more than the
    target number of channels keep a nonzero coefficient. Here the exact LASSO path (LARS)
    takes the place of the steps: the order in which coefficients first reach zero as lambda
    grows is the pruning order, so every target count gets the set the search stops at,
    without a step size to choose (a channel that comes back at a larger lambda keeps its
    first place).
    """

    patches_per_image: Annotated[int, PydanticField(ge=1)] = 10


@dataclass(frozen=True)
class ThiNetOptions:
    """Luo et al. 2017, "ThiNet: A Filter Level Pruning Method for Deep Neural Network Compression".

    ``patches_per_image``: random locations sampled per image of a convolutional consumer (the
    paper: 10 per image, from 10 images of each ImageNet class; it keeps one random output
    channel per location, here every output channel at each location is kept). The paper's
    per-layer compression rate r (0.5 for ThiNet-Conv, VGG-16) is ``scope: layer`` with
    ``channel_fraction: 0.5``; other targets choose the counts per layer through the shared
    selection.
    """

    patches_per_image: Annotated[int, PydanticField(ge=1)] = 10


@dataclass(frozen=True)
class Consumer:
    """A layer reading some of a group's channels; ``columns`` maps its input columns (a
    convolution's unfolded input: channel x kernel position) to group channels, -1 for
    columns of other groups."""

    name: str  # module name
    module: nn.Module
    columns: torch.Tensor


class _Stop(Exception):
    """Ends a forward pass once the layer of interest has seen its input."""


def kernel_size(module: nn.Module) -> int:
    return math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 1


def supported(module: nn.Module) -> bool:
    """A layer whose input is a matrix the least squares can use: Linear, or an ungrouped
    Conv2d with numeric zero padding (its input unfolds into patches)."""
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv2d) and module.groups == 1
        and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    )


def consumers_of(model: nn.Module, group: ChannelGroup) -> list[Consumer]:
    """The Conv2d and Linear layers that read ``group``'s channels."""
    consumers = []
    for s in group.of_role("in"):
        name = s.param.rsplit(".", 1)[0] if "." in s.param else ""
        module = model.get_submodule(name)
        if not supported(module):
            continue
        consumers.append(Consumer(name, module, column_owners(module, [s])))
    return consumers


def column_owners(module: nn.Module, slices: Sequence[ChannelSlice]) -> torch.Tensor:
    """Group channel of each input column of ``module`` (-1: not one of these slices')."""
    k = kernel_size(module)
    owners = torch.full((module.weight.shape[1] * k,), -1, dtype=torch.long)
    for s in slices:
        columns = (s.positions.unsqueeze(1) * k + torch.arange(k)).reshape(-1)
        owners[columns] = s.owner.repeat_interleave(k)
    return owners


def layer_input(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input ``module`` receives when ``model`` runs on ``x`` (the pass stops there)."""
    seen: list[torch.Tensor] = []

    def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(args[0].detach())
        raise _Stop

    handle = module.register_forward_pre_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not seen:
        raise ConfigError(f"channel reconstruction: layer {type(module).__name__} is not called by the model's forward pass")
    return seen[0]


def sample_rows(module: nn.Module, inputs: Sequence[torch.Tensor], patches: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Rows of the layer's input matrix, the same sampled locations for every tensor of
    ``inputs``, with a column of ones (the bias) appended: (samples, columns + 1), float64."""
    if isinstance(module, nn.Conv2d):
        unfolded = [F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride) for x in inputs]
        batch, _, locations = unfolded[0].shape
        if patches >= locations:
            picks = torch.arange(locations).expand(batch, locations)
        else:
            picks = torch.randint(0, locations, (batch, patches), generator=generator)
        picks = picks.to(unfolded[0].device)
        rows = [u.gather(2, picks.unsqueeze(1).expand(-1, u.shape[1], -1)).transpose(1, 2).reshape(-1, u.shape[1]) for u in unfolded]
    else:
        rows = [x.reshape(-1, x.shape[-1]) for x in inputs]
    return [torch.cat([r.double(), torch.ones(r.shape[0], 1, dtype=torch.float64, device=r.device)], 1) for r in rows]


def gram(
    model: nn.Module, module: nn.Module, batches: Sequence[Batch], patches: int, seed: int,
    reference: tuple[nn.Module, nn.Module] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """X^T X of the layer's sampled inputs (ones column last) and, given the reference model and
    its copy of the layer, X^T X_ref at the same samples (float64, on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    total: torch.Tensor | None = None
    cross: torch.Tensor | None = None
    for x, _ in batches:
        inputs = [layer_input(model, module, x)]
        if reference is not None:
            inputs.append(layer_input(reference[0], reference[1], x))
        rows = sample_rows(module, inputs, patches, generator)
        part = rows[0].T @ rows[0]
        total = part if total is None else total + part
        if reference is not None:
            part = rows[0].T @ rows[1]
            cross = part if cross is None else cross + part
    assert total is not None
    return total.cpu(), None if cross is None else cross.cpu()


def augmented_weight(module: nn.Module) -> torch.Tensor:
    """The layer as a matrix over its input columns and the ones column: (out, columns + 1)."""
    weight = module.weight.detach().reshape(module.weight.shape[0], -1).double().cpu()
    bias = module.bias.detach().double().cpu() if module.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    return torch.cat([weight, bias.unsqueeze(1)], 1)


def cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a Gram with a tiny ridge, raised until the factorization holds
    (dead or collinear inputs make a Gram singular)."""
    scale = float(matrix.diagonal().mean().clamp_min(1e-30)) if matrix.numel() else 1.0
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype)
    ridge = RIDGE
    while True:
        factor, info = torch.linalg.cholesky_ex(matrix + ridge * scale * eye)
        if int(info) == 0:
            return factor
        ridge *= 100


def solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Least squares from the normal equations of a Gram ``matrix``."""
    return torch.cholesky_solve(rhs, cholesky(matrix))


@dataclass(frozen=True)
class ConsumerStats:
    """One consumer of a group, on the dense network's features."""

    consumer: Consumer
    gram: torch.Tensor  # (columns + 1)^2, ones column last
    weight: torch.Tensor  # (out, columns + 1)

    def contributions(self, channels: int) -> torch.Tensor:
        """Gram of the channels' contributions Z_c = X_c W_c^T to the output: <Z_i, Z_j>."""
        cols = self.consumer.columns
        ours = torch.nonzero(cols >= 0).squeeze(1)
        weight = self.weight[:, ours]
        products = (weight.T @ weight) * self.gram[ours][:, ours]
        indicator = F.one_hot(cols[ours], channels).double()
        return indicator.T @ products @ indicator

    def relative_errors(self, order: Sequence[int]) -> list[float]:
        """For k = 1..len(order): the least-squares error of the output once the first k
        channels of ``order`` are gone, relative to the output's variance over the samples.

        One Cholesky factor serves every k: with the columns ordered as the other groups' columns
        and the ones column first, then the channels from the last removed to the first, each
        kept set is a leading block, whose explained energy is a prefix sum of the squared
        forward-substitution of the right-hand side.
        """
        cols = self.consumer.columns
        ones = cols.numel()
        base = torch.nonzero(cols < 0).squeeze(1).tolist() + ([ones] if self.consumer.module.bias is not None else [])
        blocks = [torch.nonzero(cols == c).squeeze(1).tolist() for c in reversed(order)]
        perm = torch.tensor(base + [i for block in blocks for i in block], dtype=torch.long)
        rhs = (self.gram @ self.weight.T)[perm]
        factor = cholesky(self.gram[perm][:, perm])
        forward = torch.linalg.solve_triangular(factor, rhs, upper=False)
        explained = torch.cat([torch.zeros(1, dtype=torch.float64), (forward**2).sum(1).cumsum(0)])
        energy = float(torch.einsum("od,de,oe->", self.weight, self.gram, self.weight))
        samples = float(self.gram[-1, -1])
        mean = self.gram[-1] @ self.weight.T / samples
        variance = max(energy - samples * float(mean @ mean), 1e-30)
        kept = len(base) + torch.tensor([0] + [len(b) for b in blocks]).cumsum(0)  # columns kept with j channels
        return [max(energy - float(explained[kept[len(order) - k]]), 0.0) / variance for k in range(1, len(order) + 1)]


def group_stats(inputs: ChannelScoreInputs, group: ChannelGroup, patches: int, strategy: str) -> list[ConsumerStats]:
    consumers = consumers_of(inputs.model, group)
    if not consumers:
        raise ConfigError(
            f"prune.strategy {strategy} reconstructs the layers reading each pruned channel and needs them to be "
            f"Conv2d (ungrouped) or Linear; the channels of {group.root!r} have no such reader"
        )
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=inputs.generator))
    stats = []
    for c in consumers:
        g, _ = gram(inputs.model, c.module, inputs.batches, patches, seed)
        stats.append(ConsumerStats(c, g, augmented_weight(c.module)))
    return stats


def contribution_gram(stats: Sequence[ConsumerStats], channels: int) -> torch.Tensor:
    """The channels' contributions to all consumers, each consumer's output weighted equally."""
    total = torch.zeros(channels, channels, dtype=torch.float64)
    for s in stats:
        part = s.contributions(channels)
        total += part / max(float(part.sum()), 1e-30)
    return total


def order_scores(stats: Sequence[ConsumerStats], order: Sequence[int], channels: int) -> torch.Tensor:
    """Scores that rank the channels in ``order`` (first pruned first): each channel's relative
    reconstruction error once it and all before it are gone (the mean over the consumers),
    made strictly increasing."""
    errors = torch.tensor([s.relative_errors(order) for s in stats], dtype=torch.float64).mean(0)
    ranked = errors.float()
    for k in range(1, len(ranked)):  # ties would fall back to channel index and lose the order
        ranked[k] = torch.maximum(ranked[k], torch.nextafter(ranked[k - 1], torch.tensor(float("inf"))))
    scores = torch.empty(channels)
    scores[torch.tensor(list(order), dtype=torch.long)] = ranked
    return scores


def lasso_order(gram_: torch.Tensor) -> list[int]:
    """The order in which the LASSO coefficients reach zero as the penalty grows from 0.

    The problem is min_b ||y - sum_c b_c Z_c||^2 + lambda |b|_1 over the channels'
    contributions Z_c, whose Gram is ``gram_``; the target y is the unpruned output, every
    contribution with coefficient 1, so Z^T y = gram_ 1. Its exact solution path comes from
    LARS (scikit-learn's ``lars_path_gram``); coefficients are piecewise linear in lambda, so
    a channel's first zero is at a knot of the path. Channels first zero at the same knot go
    in the order of their magnitudes at the knot below it.
    """
    from sklearn.linear_model import lars_path_gram

    channels = gram_.shape[0]
    gram_np = gram_.numpy()
    if channels == 0 or float(abs(gram_np).max(initial=0.0)) == 0.0:
        return list(range(channels))
    _, _, coefs = lars_path_gram(Xy=gram_np.sum(1), Gram=gram_np, n_samples=1, method="lasso", max_iter=8 * channels)
    path = torch.from_numpy(coefs[:, ::-1].copy())  # knots from lambda = 0 (last) up to lambda_max
    zero = path.abs() <= 1e-12 * float(path.abs().max().clamp_min(1e-300))
    zero[:, -1] = True  # at lambda_max every coefficient is zero
    first = zero.int().argmax(1)
    below = path[torch.arange(channels), (first - 1).clamp_min(0)].abs()
    return sorted(range(channels), key=lambda c: (int(first[c]), float(below[c]), c))


def greedy_order(gram_: torch.Tensor) -> list[int]:
    """ThiNet's Algorithm 1: repeatedly remove the channel that keeps the removed channels'
    summed contribution ||sum_{c in T} Z_c||^2 smallest."""
    channels = gram_.shape[0]
    removed: list[int] = []
    cross = torch.zeros(channels, dtype=torch.float64)  # sum over removed j of <Z_c, Z_j>
    gone = torch.zeros(channels, dtype=torch.bool)
    for _ in range(channels):  # ||sum_T Z + Z_c||^2 - ||sum_T Z||^2 = 2 <Z_c, sum_T Z> + ||Z_c||^2
        cost = (2 * cross + gram_.diagonal()).masked_fill(gone, float("inf"))
        best = int(torch.argmin(cost))  # the first of equal costs: the lowest channel index
        removed.append(best)
        gone[best] = True
        cross += gram_[:, best]
    return removed


def require_batches(inputs: ChannelScoreInputs, strategy: str) -> None:
    if not inputs.batches:
        raise ConfigError(f"prune.strategy {strategy} needs training batches (set prune.score_batches >= 1)")


def scores_by(inputs: ChannelScoreInputs, strategy: str, patches: int, order: Callable[[torch.Tensor], list[int]]) -> list[torch.Tensor]:
    require_batches(inputs, strategy)
    scores = []
    with torch.no_grad(), eval_mode(inputs.model):
        for group in inputs.graph.groups:
            stats = group_stats(inputs, group, patches, strategy)
            scores.append(order_scores(stats, order(contribution_gram(stats, group.channels)), group.channels))
    return scores


def reconstruct(inputs: ChannelScoreInputs, pruned: Mapping[str, list[int]], options: ChannelLassoOptions | ThiNetOptions) -> None:
    """Least-squares update of every layer that reads a pruned channel, in forward order: its
    kept weights and bias are set so that, on the pruned network's sampled inputs, it
    reproduces the unpruned network's output. Called on the unpruned model; the channel
    mask is applied to ``inputs.model`` here and again by the caller after."""
    graph, model = inputs.graph, inputs.model
    flags = [torch.zeros(g.channels, dtype=torch.bool) for g in graph.groups]
    for f, g in zip(flags, graph.groups):
        f[pruned.get(g.root, [])] = True
    readers = pruned_columns(model, graph, flags)
    if not readers:
        return
    if not inputs.batches:
        raise ConfigError("channel reconstruction needs training batches (set prune.score_batches >= 1)")
    reference = copy.deepcopy(model)  # the unpruned outputs are the targets
    mask = build_mask(graph, model, flags)
    mask.apply(model)
    references = dict(reference.named_modules())
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=inputs.generator))
    with torch.no_grad(), eval_mode(model), eval_mode(reference):
        for name in forward_order(model, list(readers), inputs.batches[0][0]):
            module, gone = model.get_submodule(name), readers[name]
            total, cross = gram(model, module, inputs.batches, options.patches_per_image, seed, (reference, references[name]))
            assert cross is not None
            keep = torch.ones(total.shape[0], dtype=torch.bool)
            keep[:-1] = ~gone
            if module.bias is None:
                keep[-1] = False
            solution = torch.zeros(total.shape[0], module.weight.shape[0], dtype=torch.float64)
            solution[keep] = solve(total[keep][:, keep], (cross @ augmented_weight(references[name]).T)[keep])
            module.weight.copy_(solution[:-1].T.reshape(module.weight.shape).to(module.weight))
            if module.bias is not None:
                module.bias.copy_(solution[-1].to(module.bias))
            mask.apply(model)  # pruned outputs of this layer stay zero for the layers after it


def pruned_columns(model: nn.Module, graph: ChannelGraph, flags: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Supported readers of pruned channels -> which of their input columns are pruned."""
    readers: dict[str, torch.Tensor] = {}
    for g, f in zip(graph.groups, flags):
        if not bool(f.any()):
            continue
        for c in consumers_of(model, g):
            hit = (c.columns >= 0) & f[c.columns.clamp_min(0)]
            readers[c.name] = readers.get(c.name, torch.zeros_like(hit)) | hit
    return {name: gone for name, gone in readers.items() if bool(gone.any())}


def forward_order(model: nn.Module, names: list[str], x: torch.Tensor) -> list[str]:
    """``names`` in the order the forward pass calls them."""
    calls: list[str] = []
    handles = [
        model.get_submodule(n).register_forward_pre_hook(lambda _m, _a, n=n: calls.append(n) if n not in calls else None)
        for n in names
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return calls + [n for n in names if n not in calls]


@register_channel_scorer(
    "channel_lasso", ChannelLassoOptions, update=reconstruct,
    summary="LASSO on each channel's contribution to the next layer, then least-squares reconstruction (He et al. 2017)",
)
def channel_lasso(inputs: ChannelScoreInputs, options: ChannelLassoOptions) -> list[torch.Tensor]:
    """He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural Networks": per
    group, LASSO over coefficients of the channels' contributions to the consumers' sampled
    outputs (Eq. 1 with W fixed), the penalty increased until channels drop out; after
    selection the consumers' weights are solved by least squares (Eq. 1 with beta fixed),
    once, against the unpruned network's outputs (Sec. 3.3's accumulated-error variant).
    Options: :class:`ChannelLassoOptions`; scores: see this module's docstring."""
    return scores_by(inputs, "channel_lasso", options.patches_per_image, lasso_order)


@register_channel_scorer(
    "thinet", ThiNetOptions, update=reconstruct,
    summary="greedy removal of the channels the next layer misses least, then least-squares reconstruction (Luo et al. 2017)",
)
def thinet(inputs: ChannelScoreInputs, options: ThiNetOptions) -> list[torch.Tensor]:
    """Luo et al. 2017, "ThiNet": channels are removed greedily, each time the one whose
    removal (with those removed before) changes the next layer's sampled output least
    (Algorithm 1, on the full Gram of channel contributions); after selection the next
    layer's kept weights are solved by least squares (the paper solves one scale per kept
    channel, Eq. 7; the full solution includes that one). Options: :class:`ThiNetOptions`."""
    return scores_by(inputs, "thinet", options.patches_per_image, greedy_order)
