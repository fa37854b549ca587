"""Channel scorers: one score per channel (unit) of each coupled group; low scores are pruned.

A channel strategy is a registered function ``(inputs, options) -> scores`` with the dataclass
of its ``prune.options``: a :class:`prunebench.pruning.scores.base.Method` whose classifier
form scores whole channels, registered in the one registry beside the weight strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import Field as PydanticField
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.errors import ConfigError
from prunebench.pruning.channels.graph import Batch, ChannelGraph, ChannelGroup, ChannelSlice, LossFn
from prunebench.pruning.scores.base import STRATEGIES, Method, NoOptions, StrategyView, Unit, first_line, register_method


@dataclass(frozen=True)
class ChannelScoreInputs:
    """What a channel scorer may look at; it must not change the model's weights or mode."""

    model: nn.Module
    graph: ChannelGraph
    batches: Sequence[Batch] = ()
    loss_fn: LossFn = F.cross_entropy
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))


# A channel scorer returns one score per channel (unit) of each group; low scores are pruned.
ChannelScorer = Callable[[ChannelScoreInputs, Any], list[torch.Tensor]]
# After selection a channel strategy may rewrite the weights the kept channels feed (least-squares
# reconstruction of the next layer's output): ``update(inputs, pruned, options)`` with ``pruned``
# the group root -> pruned channel indices, on the model as it was scored (the pruned channels'
# weights still there, so their output can be reconstructed); the mask is applied after it.
ChannelUpdate = Callable[[ChannelScoreInputs, Mapping[str, list[int]], Any], None]


@dataclass(frozen=True, kw_only=True)
class ChannelStrategy(Method):
    """A method whose classifier form scores whole channels (``prune.structure: channel``),
    with the dataclass of its ``prune.options`` (:class:`prunebench.pruning.scores.base.Method`)."""

    score: ChannelScorer
    # A strategy that needs its own training before it scores (slimming's L1 on BN scales)
    # gives the loss of that phase here: (model, options) -> loss_fn; its options then carry
    # ``epochs`` (None: the fine-tuning recipe's).
    training_loss: Callable[[nn.Module, Any], LossFn] | None = None
    update: ChannelUpdate | None = None  # rewrites the kept weights after selection (see ChannelUpdate)
    unit: Unit | None = field(default="channels", init=False)

    @property
    def training_phase(self) -> bool:
        return self.training_loss is not None

    @property
    def reconstructs(self) -> bool:
        return self.update is not None

    @property
    def description(self) -> str:
        return self.summary or first_line(self.score)


# Channel strategies live in the one strategy registry; this is the view of those scoring channels.
CHANNEL_SCORERS: StrategyView[ChannelStrategy] = StrategyView(STRATEGIES, ChannelStrategy, "channel strategy")


def register_channel_scorer(
    name: str,
    options: type = NoOptions,
    training_loss: Callable[[nn.Module, Any], LossFn] | None = None,
    summary: str = "",
    update: ChannelUpdate | None = None,
    needs: Literal["nothing", "batches"] = "batches",
    comparable: bool = True,
) -> Callable[[ChannelScorer], ChannelScorer]:
    """Register ``fn(inputs, options) -> scores`` as channel strategy ``name`` (``update``: see
    ChannelUpdate; ``needs`` and ``comparable``: see Method)."""

    def decorator(fn: ChannelScorer) -> ChannelScorer:
        register_method(ChannelStrategy(name=name, score=fn, options_type=options, training_loss=training_loss,
                                        summary=summary, update=update, needs=needs, comparable=comparable))
        return fn

    return decorator


@dataclass(frozen=True)
class SlimmingOptions:
    """Liu et al. 2017's sparsity training, run before slimming prunes.

    ``sparsity`` is the paper's lambda, the weight of the L1 penalty on every BatchNorm scale
    (Section 5: chosen from 1e-3, 1e-4, 1e-5 on CIFAR-10; 1e-4 for VGGNet, 1e-5 for ResNet and
    DenseNet). ``epochs`` of sparsity training (unset: the ``finetune`` recipe's epochs; 0 skips
    the phase and prunes the dense model's own |gamma|).
    """

    sparsity: Annotated[float, PydanticField(ge=0)] = 1e-4
    epochs: Annotated[int, PydanticField(ge=0)] | None = None


def rows(tensor: torch.Tensor, s: ChannelSlice) -> torch.Tensor:
    """One row per position of ``s``: the parameter's entries belonging to that position."""
    return tensor.detach().index_select(s.dim, s.positions).movedim(s.dim, 0).reshape(s.positions.numel(), -1).float()


def per_channel(group: ChannelGroup, slices: Iterable[ChannelSlice], values: Callable[[ChannelSlice], torch.Tensor]) -> torch.Tensor:
    """Sum ``values(slice)`` (one value per position) into the group's channels."""
    total = torch.zeros(group.channels)
    for s in slices:
        total.index_add_(0, s.owner, values(s).cpu())
    return total


@register_channel_scorer("l1_filter", needs="nothing", summary="the L1 norm of each filter (Li et al. 2017)")
def l1_filter(inputs: ChannelScoreInputs, options: NoOptions) -> list[torch.Tensor]:
    """Li et al. 2017, "Pruning Filters for Efficient ConvNets": the sum of absolute kernel
    weights of each filter. Where several layers write one channel (a residual stream), the
    channel's score is the sum over those filters."""
    params = dict(inputs.model.named_parameters())
    return [
        per_channel(g, g.of_role("out"), lambda s: rows(params[s.param], s).abs().sum(1))
        for g in inputs.graph.groups
    ]


@register_channel_scorer("fpgm", needs="nothing", summary="distance to the geometric median of the layer's filters (He et al. 2019)")
def fpgm(inputs: ChannelScoreInputs, options: NoOptions) -> list[torch.Tensor]:
    """He et al. 2019, "Filter Pruning via Geometric Median": filters close to the geometric
    median of their layer are the most replaceable. As in the paper (Eq. 6), a filter's score
    is the sum of its Euclidean distances to the other filters of its layer; the smallest
    sums are pruned. Channels written by several layers sum their per-layer scores."""
    params = dict(inputs.model.named_parameters())

    def distance_sums(s: ChannelSlice) -> torch.Tensor:
        filters = rows(params[s.param], s)
        return torch.cdist(filters.unsqueeze(0), filters.unsqueeze(0)).squeeze(0).sum(1)

    return [per_channel(g, g.of_role("out"), distance_sums) for g in inputs.graph.groups]


def slimming_training_loss(model: nn.Module, options: SlimmingOptions) -> LossFn:
    return slimming_loss(model, options.sparsity)


@register_channel_scorer(
    "slimming", SlimmingOptions, slimming_training_loss, needs="nothing",  # its training phase reads the data; its scores do not
    summary="|BatchNorm scale| after L1 sparsity training on the scales (Liu et al. 2017)",
)
def slimming(inputs: ChannelScoreInputs, options: SlimmingOptions) -> list[torch.Tensor]:
    """Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming":
    the absolute BatchNorm scale |gamma| of each channel (summed where several BNs share a
    channel). Train with :func:`slimming_loss` first, as the paper does: a run does so for
    ``prune.options.epochs`` epochs with ``prune.options.sparsity`` (:class:`SlimmingOptions`)."""
    params = dict(inputs.model.named_parameters())
    scores = []
    for g in inputs.graph.groups:
        norms = g.of_role("norm")
        if not norms:
            raise ConfigError(f"prune.strategy slimming needs BatchNorm after every pruned layer; {g.root} has none")
        scores.append(per_channel(g, norms, lambda s: rows(params[s.param], s).abs().sum(1)))
    return scores


@register_channel_scorer("taylor", summary="(sum of gradient x weight over the channel's parameters)^2 (Molchanov et al. 2019)")
def taylor(inputs: ChannelScoreInputs, options: NoOptions) -> list[torch.Tensor]:
    """Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning": the
    importance of a set of parameters S is (sum over s in S of g_s * w_s)^2, a first-order
    estimate of the loss change when S is removed, averaged over mini-batches. S is every
    parameter slice removed with the channel (filters, BN scale and shift, reader slices).
    Gradients are taken in training mode on a copy, so the model's BN statistics stay put."""
    if not inputs.batches:
        raise ConfigError("prune.strategy taylor needs training batches (set prune.score_batches >= 1)")
    import copy

    model = copy.deepcopy(inputs.model).train()
    params = dict(model.named_parameters())
    totals = [torch.zeros(g.channels) for g in inputs.graph.groups]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=inputs.generator))
    for x, y in inputs.batches:
        model.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=[]):  # dropout draws from the scorer's seed only
            torch.manual_seed(seed)
            inputs.loss_fn(model(x), y).backward()
        for total, g in zip(totals, inputs.graph.groups):
            def contribution(s: ChannelSlice) -> torch.Tensor:
                p = params[s.param]
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                return (rows(grad, s) * rows(p, s)).sum(1)

            total += per_channel(g, g.slices, contribution) ** 2
    return [t / len(inputs.batches) for t in totals]


@register_channel_scorer("random_channel", needs="nothing", summary="uniform random channel scores: the channel structure's control")
def random_channel(inputs: ChannelScoreInputs, options: NoOptions) -> list[torch.Tensor]:
    """Uniform random channel scores: the baseline every structured method must beat."""
    return [torch.rand(g.channels, generator=inputs.generator) for g in inputs.graph.groups]


def slimming_loss(model: nn.Module, strength: float, base: LossFn = F.cross_entropy) -> LossFn:
    """Liu et al. 2017's training objective: ``base`` + strength * sum |gamma| over every BN
    scale, which drives unimportant channels' scales towards zero (the paper uses 1e-4 for
    VGG). Pass it as ``loss_fn`` to the training loop for the sparsity-training phase."""
    if strength < 0:
        raise ConfigError(f"prune.options.sparsity must be >= 0, got {strength}")
    scales = [m.weight for m in model.modules() if isinstance(m, _BatchNorm) and m.weight is not None]
    if not scales:
        raise ConfigError("slimming training needs a model with BatchNorm layers")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return base(logits, target) + strength * sum(s.abs().sum() for s in scales)

    return loss


def score_channels(
    strategy: str,
    model: nn.Module,
    graph: ChannelGraph,
    batches: Sequence[Batch] = (),
    loss_fn: LossFn = F.cross_entropy,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> list[torch.Tensor]:
    """Run a registered channel scorer and check its output (one finite score per channel)."""
    scorer = CHANNEL_SCORERS.get(strategy)
    inputs = ChannelScoreInputs(model, graph, batches, loss_fn, torch.Generator().manual_seed(seed))
    scores = scorer.score(inputs, scorer.parse_options(options))
    if len(scores) != len(graph.groups):
        raise ValueError(f"channel strategy {strategy!r} scored {len(scores)} groups, expected {len(graph.groups)}")
    for g, s in zip(graph.groups, scores):
        if s.shape != (g.channels,) or bool(torch.isnan(s).any()):
            raise ValueError(f"channel strategy {strategy!r}: bad scores for group {g.root}")
    return scores
