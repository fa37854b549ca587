"""Channel pruning by reconstruction (channel_lasso, thinet) against hand-built cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.spec import PruneSpec
from prunebench.pruning.channels import channel_graph, prune_order, register_channel_scorer, score_channels
from prunebench.pruning.channels.reconstruct import greedy_order, lasso_order
from prunebench.pruning.compact import compact
from prunebench.pruning.prune import prune_model, scoring_batches
from prunebench.pruning.scores import STRATEGIES
from prunebench.pruning.selection import tie_generator

pytest.importorskip("torch_pruning")


def splits(x: torch.Tensor) -> pb.DataSplits:
    y = torch.zeros(x.shape[0], dtype=torch.long)
    return pb.DataSplits.from_tensors(train=(x, y), test=(x[:8], y[:8]))


def spanned_mlp() -> nn.Module:
    """6 hidden units, of which 3, 4, 5 are small positive multiples of 0, 1, 2 (ReLU keeps
    that: relu(a z) = a relu(z) for a > 0), so units 0-2 span the whole hidden layer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        for copy_, source, scale in ((3, 0, 0.02), (4, 1, 0.03), (5, 2, 0.01)):
            model[0].weight[copy_] = scale * model[0].weight[source]
            model[0].bias[copy_] = scale * model[0].bias[source]
    return model


def spanned_cnn() -> nn.Module:
    """conv 1->4 whose channels 2, 3 are small multiples of 0, 1; conv2 and the classifier read them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2))
    with torch.no_grad():
        for copy_, source, scale in ((2, 0, 0.02), (3, 1, 0.05)):
            model[0].weight[copy_] = scale * model[0].weight[source]
            model[0].bias[copy_] = scale * model[0].bias[source]
    return model


def channel_spec(strategy: str, fraction: float, **extra: Any) -> PruneSpec:
    return PruneSpec(strategy=strategy, structure="channel", channel_fraction=fraction, score_batches=2, batch_size=64, **extra)


@pytest.mark.parametrize("strategy", ["channel_lasso", "thinet"])
def test_the_kept_channels_that_span_the_layer_reconstruct_it_exactly(strategy: str) -> None:
    x = torch.randn(128, 4)
    model, dense = spanned_mlp(), spanned_mlp()
    mask = prune_model(model, splits(x), channel_spec(strategy, 0.5), seed=0)
    assert mask["0.weight"].any(1).tolist() == [True, True, True, False, False, False]  # the small copies go
    fresh = torch.randn(256, 4)  # not the samples the least squares saw: the span is exact everywhere
    with torch.no_grad():
        error = (model(fresh) - dense(fresh)).abs().max()
        masked_only = copy.deepcopy(dense)
        mask.apply(masked_only)
        lost = (masked_only(fresh) - dense(fresh)).abs().max()
    assert error < 1e-5
    assert lost > 1e-2  # without the update the removed copies' share is missing


def test_the_least_squares_update_reconstructs_a_convolution_from_sampled_patches() -> None:
    x = torch.randn(64, 1, 8, 8)
    model, dense = spanned_cnn(), spanned_cnn()
    spec = channel_spec("channel_lasso", 0.5, prunable={"exclude": ["2.*"]}, options={"patches_per_image": 5})
    mask = prune_model(model, splits(x), spec, seed=0)
    assert mask["0.weight"].flatten(1).any(1).tolist() == [True, True, False, False]
    assert mask["2.weight"][:, 2:].sum() == 0  # conv2 lost its inputs from the pruned channels
    fresh = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        assert (model[:3](fresh) - dense[:3](fresh)).abs().max() < 1e-5  # conv2's output, every location


def thinet_case() -> tuple[nn.Module, torch.Tensor]:
    """4 hidden units on positive inputs (ReLU passes them): unit 0 has the largest filter but
    a small share of the output, unit 3 the smallest next-layer weights but a large share, unit
    1 the smallest filter among the rest (l1_filter's choice)."""
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[5.0, 0, 0], [0, 1, 0], [0, 0, 1.2], [20, 20, 0]]))
        model[2].weight.copy_(torch.tensor([[0.05, 1, 0, 0.02], [0.05, 0, 1, 0.02]]))
    torch.manual_seed(0)
    return model, torch.rand(256, 3)


def output_change(model: nn.Module, x: torch.Tensor, removed: list[int]) -> float:
    """||f(x) - f without the removed hidden units(x)||^2, by forward passes."""
    with torch.no_grad():
        hidden = model[1](model[0](x))
        kept = hidden.clone()
        kept[:, removed] = 0
        return float(((model[2](hidden) - model[2](kept)) ** 2).sum())


def test_thinet_removes_the_channel_the_next_layer_misses_least() -> None:
    model, x = thinet_case()
    data = splits(x)
    graph = channel_graph(model, (3,))
    batches = scoring_batches(data, 128, 2, 0)
    order = [c for _, c in prune_order(graph, score_channels("thinet", model, graph, batches), "layer", tie_generator(0, "channels"))]
    changes = [output_change(model, x, [c]) for c in range(4)]
    assert order[0] == min(range(4), key=changes.__getitem__) == 0
    l1 = score_channels("l1_filter", model, graph)[0]
    assert int(l1.argmin()) == 1 and int(model[2].weight.abs().sum(0).argmin()) == 3  # neither picks unit 0
    second = min((1, 2, 3), key=lambda c: output_change(model, x, [0, c]))  # greedy: given unit 0 is gone
    assert order[1] == second == 1
    pruned = copy.deepcopy(model)
    prune_model(pruned, data, channel_spec("thinet", 0.25), seed=0)
    assert pruned[0].weight[0].abs().sum() == 0 and pruned[0].weight[1:].abs().sum() > 0
    with torch.no_grad():  # the least-squares update then does better than dropping the unit alone
        assert float(((pruned(x) - model(x)) ** 2).sum()) < output_change(model, x, [0])


def test_lasso_drops_a_contribution_that_others_cancel_before_a_larger_independent_one() -> None:
    # contributions: z0 = u, z1 = -0.9 u + small, z2 = v (orthogonal, smaller than z0): the
    # output z0 + z1 + z2 = 0.1 u + v is mostly v, so LASSO gives up u's pair before v;
    # ThiNet's greedy first step only sees norms and removes the smallest, z2.
    u, v, w = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0.6, 0]), torch.tensor([0, 0, 0.05])
    z = torch.stack([u, -0.9 * u + w, v]).double()
    gram = z @ z.T
    assert lasso_order(gram)[-1] == 2  # v is kept longest
    assert greedy_order(gram)[0] == 2


def test_an_update_sees_the_unpruned_weights_and_the_mask_applies_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    seen: dict[str, float] = {}

    def record(inputs: Any, pruned: Any, options: Any) -> None:
        weight = dict(inputs.model.named_parameters())["0.weight"]
        seen["pruned filters"] = float(weight[pruned["0"]].abs().sum())

    def smallest_first(inputs: Any, options: Any) -> list[torch.Tensor]:
        return [torch.arange(g.channels, dtype=torch.float32) for g in inputs.graph.groups]

    register_channel_scorer("recording_update", update=record)(smallest_first)
    model = spanned_mlp()
    mask = prune_model(model, splits(torch.randn(64, 4)), channel_spec("recording_update", 0.5), seed=0)
    assert seen["pruned filters"] > 0  # the hook ran before the mask zeroed them
    assert float(model[0].weight.detach()[~mask["0.weight"]].abs().sum()) == 0


class TinyResidual(nn.Module):
    """stem -> one basic block with an identity shortcut -> pool -> linear: the stem and the
    block's second conv write one residual stream, which the block's first conv and the
    classifier both read."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.conv1, self.bn1 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(h))))))
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("strategy", ["channel_lasso", "thinet"])
def test_coupled_residual_channels_are_pruned_together_and_reconstructed(strategy: str) -> None:
    torch.manual_seed(0)
    model = TinyResidual().eval()
    for bn in (model.bn1, model.bn2):  # trained-looking statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    dense = copy.deepcopy(model)
    x = torch.randn(64, 1, 8, 8)
    spec = PruneSpec(strategy=strategy, structure="channel", speedup=1.5, score_batches=2, batch_size=32)
    mask = prune_model(model, splits(x), spec, seed=0)
    stream = ~mask["stem.weight"].flatten(1).any(1)
    assert stream.any()  # residual channels went, from every layer writing or reading them
    assert torch.equal(~mask["conv2.weight"].flatten(1).any(1), stream)
    assert torch.equal(mask["fc.weight"].any(0), ~stream)
    masked_only = copy.deepcopy(dense)
    mask.apply(masked_only)
    small = compact(model, mask, (1, 8, 8))  # the reconstructed weights survive physical removal
    with torch.no_grad():
        assert float(((model(x) - dense(x)) ** 2).mean()) < float(((masked_only(x) - dense(x)) ** 2).mean())
        assert (small(x) - model(x)).abs().max() < 1e-5
    assert small.stem.out_channels == int((~stream).sum())


def test_neuron_merging_on_top_of_a_reconstruction_is_refused() -> None:
    with pytest.raises(ValueError, match="prune.merge: prune.strategy 'thinet' already rewrites"):
        PruneSpec(strategy="thinet", structure="channel", speedup=2, merge=True)
