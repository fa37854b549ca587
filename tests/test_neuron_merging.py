"""Neuron Merging: a pruned neuron that is a scaled copy of a kept one is carried over exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunebench.spec import ExperimentSpec, PruneSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.pruning.channels import channel_graph
from prunebench.pruning.channels.merge import merge_plan, merge_pruned_channels
from prunebench.pruning.prune import prune_model
from prunebench.pruning.scores import STRATEGIES

pytest.importorskip("torch_pruning")


def mlp_with_a_copy(scale: float) -> nn.Module:
    """Hidden neuron 5 is ``scale`` times neuron 1 (weights and bias)."""
    torch.manual_seed(11)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 10))
    with torch.no_grad():
        model[1].weight[5] = scale * model[1].weight[1]
        model[1].bias[5] = scale * model[1].bias[1]
    return model


def channel_spec(**extra) -> PruneSpec:  # type: ignore[no-untyped-def]
    return PruneSpec(strategy="l1_filter", structure="channel", channel_fraction=1 / 6, score_batches=1,
                     batch_size=16, **extra)


def test_a_pruned_scaled_copy_is_merged_and_the_output_is_unchanged(synthetic: DataSplits) -> None:
    dense = mlp_with_a_copy(0.25)  # the smallest L1 norm: l1_filter prunes it
    merged, plain = copy.deepcopy(dense), copy.deepcopy(dense)
    mask = prune_model(merged, synthetic, channel_spec(merge=True), seed=0)
    prune_model(plain, synthetic, channel_spec(), seed=0)
    assert not bool(mask["1.weight"][5].any()) and bool(mask["1.weight"][:5].all())  # neuron 5 went
    x = synthetic.test_x[:64]
    with torch.no_grad():
        torch.testing.assert_close(merged(x), dense(x), rtol=0, atol=1e-5)
        assert (plain(x) - dense(x)).abs().max() > 1e-3  # plain pruning loses it
    assert bool((merged[3].weight[:, 5] == 0).all())  # the reader's column for it is pruned


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def conv_with_a_copy() -> nn.Module:
    """Filter 3, through its BatchNorm, is 0.5 times filter 0 through its own (different
    BatchNorm statistics and affine parameters: only the folded filters are proportional)."""
    torch.manual_seed(12)
    model = ConvBN().eval()
    with torch.no_grad():
        bn = model.bn
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.7]))
        bn.running_var.copy_(torch.tensor([1.5, 0.5, 2.0, 0.8]))
        bn.weight.copy_(torch.tensor([1.2, 0.9, 1.1, 2.0]))
        bn.bias.copy_(torch.tensor([0.05, -0.1, 0.2, 0.0]))
        a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        model.conv.weight[3] = 2.0 * model.conv.weight[0]
        model.conv.bias[3] = 2.0 * model.conv.bias[0]
        t = 0.5  # folded filter 3 = t * folded filter 0 requires a_3 * 2 = t * a_0
        bn.weight[3] = t * a[0] / 2.0 * torch.sqrt(bn.running_var[3] + bn.eps)
        a3 = bn.weight[3] / torch.sqrt(bn.running_var[3] + bn.eps)
        folded_bias_0 = a[0] * (model.conv.bias[0] - bn.running_mean[0]) + bn.bias[0]
        bn.bias[3] = t * folded_bias_0 - a3 * (model.conv.bias[3] - bn.running_mean[3])
    return model


def test_merging_folds_batch_norm_and_reproduces_a_convolution_exactly() -> None:
    dense = conv_with_a_copy()
    model = copy.deepcopy(dense)
    graph = channel_graph(model, (1, 8, 8))
    conv_group = next(g for g in graph.groups if g.root == "conv")
    plain = copy.deepcopy(dense)
    assert merge_pruned_channels(model, graph, {"conv": [3]}, threshold=0.45) == {"conv": 1}
    params, plain_params = dict(model.named_parameters()), dict(plain.named_parameters())
    with torch.no_grad():  # then the pruning mask: filter 3, its BatchNorm entries, the head's inputs for it
        for s in conv_group.slices:
            for p in (params[s.param], plain_params[s.param]):
                p.index_fill_(s.dim, s.positions[s.owner == 3], 0.0)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), dense(x), rtol=0, atol=1e-5)
        assert (plain(x) - dense(x)).abs().max() > 1e-3


def test_a_dissimilar_neuron_is_left_out_below_the_threshold() -> None:
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]], dtype=torch.float64)
    plan = merge_plan(vectors, [2, 3], threshold=0.45)
    assert [(m.pruned, m.kept) for m in plan] == [(2, 0)]  # neuron 3 points away from every kept one
    assert plan[0].scale == pytest.approx(float(vectors[2].norm()))
    assert merge_plan(vectors, [2], threshold=0.999) == []


def test_merge_is_a_channel_setting_in_the_run_id() -> None:
    plain = ExperimentSpec(dataset="digits", model="mlp", prune=channel_spec())
    spelled = ExperimentSpec(dataset="digits", model="mlp", prune=channel_spec(merge=False))
    merged = ExperimentSpec(dataset="digits", model="mlp", prune=channel_spec(merge=True))
    assert plain.run_id == spelled.run_id != merged.run_id
    assert plain.prune.resolved()["merge"] is False and merged.prune.resolved()["merge_threshold"] == 0.45
    assert merged.run_id != ExperimentSpec(dataset="digits", model="mlp", prune=channel_spec(merge=True, merge_threshold=0.3)).run_id
    with pytest.raises(ConfigError, match=r"^prune.merge: Neuron Merging needs prune.structure 'channel', not 'unstructured'$"):
        PruneSpec().replace(merge=True)
    with pytest.raises(ConfigError, match=r"^prune.merge_threshold is only used with prune.merge: true$"):
        channel_spec().replace(merge_threshold=0.3)


def test_every_channel_strategy_can_merge(synthetic: DataSplits) -> None:
    """Whatever chose the channels, merging only moves the weights that read them (strategies
    that rewrite those weights themselves refuse merging: see test_reconstruct.py)."""
    channel_names = [n for n in STRATEGIES.names() if "channel" in STRATEGIES.get(n).structures
                     and STRATEGIES.get(n).training_loss is None and STRATEGIES.get(n).update is None]
    for name in channel_names:
        model = mlp_with_a_copy(0.25)
        spec = PruneSpec(strategy=name, structure="channel", channel_fraction=0.5, score_batches=1, batch_size=16, merge=True)
        mask = prune_model(model, synthetic, spec, seed=0)
        assert all(bool((p[~mask[n]] == 0).all()) for n, p in model.named_parameters() if n in mask)
