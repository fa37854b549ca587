"""Channel pruning and physical removal over every registered CNN, plus scorer definitions."""

from __future__ import annotations

import sys
from copy import deepcopy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytest.importorskip("torch_pruning")

from prunebench.errors import ConfigError  # noqa: E402
from prunebench.metrics import mac_metrics, size_metrics  # noqa: E402
from prunebench.models import MODELS, create_model  # noqa: E402
from prunebench.pruning.mask import Mask  # noqa: E402
from prunebench.pruning.channels import (  # noqa: E402
    CHANNEL_SCORERS,
    ChannelTarget,
    channel_graph,
    prune_channels,
    score_channels,
    select_channels,
    slimming_loss,
)
from prunebench.pruning.compact import compact, scratch_epochs, scratch_model  # noqa: E402

# Small inputs keep the test fast; every model here pools adaptively or sizes its classifier
# from the input. The smallest valid size: 32 for the 224-models (32x downsampling), 16 for
# VGG (4 max-pools), 8 for the rest.
def small_shape(name: str) -> tuple[int, int, int]:
    if name in ("resnet-18", "resnet-50", "mobilenet-v2"):
        return (3, 32, 32)
    if name == "lenet-5":
        return (1, 28, 28)
    return (3, 16, 16) if name.startswith("vgg") else (3, 8, 8)


def cnn_names() -> list[str]:
    names = []
    for name in MODELS.names():
        shape = small_shape(name)
        try:
            model = create_model(name, shape, 10)
        except ValueError:
            continue  # a factory that refuses image inputs is no CNN
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            names.append(name)
    return names


CNNS = cnn_names()


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny convolutions gain nothing from a second thread, and on a busy machine every op
    would wait for the slower of two threads; one thread keeps this module fast."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine terms (as after training) and no exact-zero weights,
    so that nonzero counts equal kept counts and the comparison exercises every channel."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.2, 0.6, generator=g)  # keeps deep nets' outputs O(1)
                m.bias.uniform_(-0.5, 0.5, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
        for p in model.parameters():
            p.masked_fill_(p == 0, 1e-3)
    return model.eval()


def masked_copy(model: nn.Module, mask: Mask) -> nn.Module:
    copy = deepcopy(model)
    mask.apply(copy)
    return copy.eval()


def test_every_cnn_model_is_covered() -> None:
    expected = {"resnet-20", "resnet-32", "resnet-44", "resnet-56", "resnet-110", "vgg-11-bn",
                "vgg-13-bn", "vgg-16-bn", "vgg-19-bn", "conv-2", "conv-4", "conv-6",
                "resnet-18", "resnet-50", "mobilenet-v2"}
    assert expected <= set(CNNS)


@pytest.mark.parametrize("name", CNNS)
def test_compact_equals_masked(name: str) -> None:
    shape = small_shape(name)
    model = trained_like(create_model(name, shape, 10))
    graph = channel_graph(model, shape)
    assert graph.groups, f"{name} has no prunable channel group"
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    cases = [
        ("l1_filter", ChannelTarget("channel_fraction", 0.5), "layer"),
        ("random_channel", ChannelTarget("speedup", 1.6), "global"),
    ]
    for strategy, target, scope in cases:
        scores = score_channels(strategy, model, graph, seed=3)
        selection = select_channels(graph, model, scores, target, scope)
        masked = masked_copy(model, selection.mask)
        small = compact(model, selection.mask, shape).eval()

        assert sum(p.numel() for p in small.parameters()) < graph.params_total
        with torch.no_grad():
            reference = masked(x)
            diff = (reference - small(x)).abs().max().item()
        assert reference.abs().max() < 1e3  # an absolute tolerance needs outputs of sane size
        assert diff < 1e-5, f"{name} {strategy}: compact differs from masked by {diff}"
        masked_size, small_size = size_metrics(masked, []), size_metrics(small, [])
        assert small_size.params_total == masked_size.params_nonzero == selection.achieved.params_kept
        masked_macs, small_macs = mac_metrics(masked, shape), mac_metrics(small, shape)
        assert small_macs.dense_total == masked_macs.effective_total == selection.achieved.macs_kept
        if target.kind == "speedup":
            assert selection.achieved.speedup >= target.value
        else:
            assert selection.achieved.channels_pruned == round(target.value * graph.channels_total)


def small_resnet() -> tuple[nn.Module, tuple[int, int, int]]:
    shape = (3, 8, 8)
    return trained_like(create_model("resnet-20", shape, 10)), shape


@pytest.mark.parametrize("kind,value", [("compression", 1.5), ("speedup", 2.0)])
def test_target_is_reached_with_the_fewest_channels(kind: str, value: float) -> None:
    model, shape = small_resnet()
    graph = channel_graph(model, shape)
    scores = score_channels("l1_filter", model, graph)
    selection = select_channels(graph, model, scores, ChannelTarget(kind, value))  # type: ignore[arg-type]
    reached = getattr(selection.achieved, kind)
    assert reached >= value
    fewer = selection.achieved.channels_pruned - 1
    one_less = select_channels(graph, model, scores, ChannelTarget("channel_fraction", fewer / graph.channels_total))
    assert one_less.achieved.channels_pruned == fewer
    assert getattr(one_less.achieved, kind) < value


def test_residual_channels_are_pruned_together() -> None:
    model = trained_like(create_model("resnet-18", (3, 32, 32), 10))
    graph = channel_graph(model, (3, 32, 32))
    stream = next(g for g in graph.groups if any(s.param == "layer1.0.conv2.weight" for s in g.slices))
    writers = {s.param for s in stream.of_role("out")}
    assert {"conv1.weight", "layer1.0.conv2.weight", "layer1.1.conv2.weight"} <= writers
    readers = {s.param for s in stream.of_role("in")}
    assert {"layer1.0.conv1.weight", "layer2.0.conv1.weight", "layer2.0.downsample.0.weight"} <= readers
    # pruning it removes the channel from the stem and both blocks at once
    flags = [torch.zeros(g.channels, dtype=torch.bool) for g in graph.groups]
    flags[graph.groups.index(stream)][5] = True
    from prunebench.pruning.channels import build_mask

    mask = build_mask(graph, model, flags)
    small = compact(model, mask, (3, 32, 32))
    assert small.conv1.out_channels == 63 and small.layer1[1].conv2.out_channels == 63
    assert small.layer2[0].conv1.in_channels == 63


def test_depthwise_convolution_follows_its_expansion() -> None:
    model = trained_like(create_model("mobilenet-v2", (3, 32, 32), 10))
    graph = channel_graph(model, (3, 32, 32))
    group = next(g for g in graph.groups if any(s.param == "features.2.conv.0.0.weight" for s in g.of_role("out")))
    params = {s.param for s in group.slices}
    assert "features.2.conv.1.0.weight" in params  # the depthwise filters of the same channels
    assert "features.2.conv.2.weight" in params  # the projection reads them


def test_option_a_residual_stream_is_kept_whole() -> None:
    model, shape = small_resnet()
    graph = channel_graph(model, shape)
    roots = {g.root for g in graph.groups}
    assert roots == {f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3)}


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 3, 3, padding=1), nn.BatchNorm2d(3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(3, 2))
    return trained_like(net)


def test_scorers_follow_their_papers() -> None:
    net = tiny_net()
    shape = (2, 5, 5)
    graph = channel_graph(net, shape)
    assert sorted(g.root for g in graph.groups) == ["0", "3"]
    first = [g.root for g in graph.groups].index("0")
    w = net[0].weight.detach()
    l1 = score_channels("l1_filter", net, graph)[first]
    torch.testing.assert_close(l1, w.abs().sum((1, 2, 3)))
    fpgm = score_channels("fpgm", net, graph)[first]
    flat = w.reshape(4, -1)
    expected = torch.stack([(flat - flat[i]).norm(dim=1).sum() for i in range(4)])
    torch.testing.assert_close(fpgm, expected, rtol=1e-4, atol=1e-4)
    slim = score_channels("slimming", net, graph)[first]
    torch.testing.assert_close(slim, net[1].weight.detach().abs())


def test_taylor_is_squared_sum_of_gradient_times_weight() -> None:
    net = tiny_net()
    shape = (2, 5, 5)
    graph = channel_graph(net, shape)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(6, *shape, generator=g), torch.randint(0, 2, (6,), generator=g))
    score = score_channels("taylor", net, graph, batches=[batch])[[g.root for g in graph.groups].index("0")]
    reference = tiny_net().train()
    F.cross_entropy(reference(batch[0]), batch[1]).backward()
    conv, bn, nxt = reference[0], reference[1], reference[3]
    expected = ((conv.weight.grad * conv.weight).sum((1, 2, 3)) + conv.bias.grad * conv.bias
                + bn.weight.grad * bn.weight + bn.bias.grad * bn.bias
                + (nxt.weight.grad * nxt.weight).sum((0, 2, 3))) ** 2
    torch.testing.assert_close(score, expected.detach(), rtol=1e-4, atol=1e-7)
    assert net[1].running_mean.equal(tiny_net()[1].running_mean)  # statistics untouched


def test_random_channel_is_seeded() -> None:
    net = tiny_net()
    graph = channel_graph(net, (2, 5, 5))
    a = score_channels("random_channel", net, graph, seed=4)
    b = score_channels("random_channel", net, graph, seed=4)
    c = score_channels("random_channel", net, graph, seed=5)
    assert all(x.equal(y) for x, y in zip(a, b)) and not all(x.equal(y) for x, y in zip(a, c))


def test_registered_channel_scorers() -> None:
    assert {"l1_filter", "fpgm", "slimming", "taylor", "random_channel"} <= set(CHANNEL_SCORERS.names())


def test_slimming_needs_batchnorm() -> None:
    model = create_model("conv-2", (3, 16, 16), 10)
    with pytest.raises(ConfigError, match="BatchNorm"):
        prune_channels(model, (3, 16, 16), "slimming", ChannelTarget("channel_fraction", 0.1))


def test_slimming_loss_adds_l1_of_bn_scales() -> None:
    net = tiny_net()
    logits, target = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    loss = slimming_loss(net, 1e-2)(logits, target)
    scales = net[1].weight.abs().sum() + net[4].weight.abs().sum()
    expected = F.cross_entropy(logits, target) + 1e-2 * scales
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ConfigError, match="prune.options.sparsity"):
        slimming_loss(net, -1.0)


def test_previous_channels_stay_pruned() -> None:
    model, shape = small_resnet()
    first = prune_channels(model, shape, "random_channel", ChannelTarget("channel_fraction", 0.2), seed=1)
    second = prune_channels(model, shape, "l1_filter", ChannelTarget("channel_fraction", 0.4), previous=first.mask)
    assert second.mask.is_subset_of(first.mask)
    assert second.achieved.channels_pruned >= first.achieved.channels_pruned


@pytest.mark.parametrize(
    "kind,value,match",
    [("compression", 0.5, "compression"), ("speedup", 0.9, "speedup"),
     ("channel_fraction", 1.0, "channel_fraction"), ("flops", 2.0, "target")],
)
def test_bad_targets_are_config_errors(kind: str, value: float, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ChannelTarget(kind, value)  # type: ignore[arg-type]


def test_unreachable_target_names_the_limit() -> None:
    model, shape = small_resnet()
    with pytest.raises(ConfigError, match="cannot be reached"):
        prune_channels(model, shape, "l1_filter", ChannelTarget("compression", 1000.0))


def test_missing_torch_pruning_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(ConfigError, match=r"pip install 'prunebench\[structured\]'"):
        channel_graph(tiny_net(), (2, 5, 5))


def test_scratch_baselines() -> None:
    model, shape = small_resnet()
    selection = prune_channels(model, shape, "l1_filter", ChannelTarget("speedup", 2.0))
    small = compact(model, selection.mask, shape)
    fresh = scratch_model(small, seed=0)
    shapes = {n: p.shape for n, p in small.named_parameters()}
    assert {n: p.shape for n, p in fresh.named_parameters()} == shapes
    assert not fresh.layer1[0].conv1.weight.equal(small.layer1[0].conv1.weight)
    assert scratch_model(small, seed=0).layer1[0].conv1.weight.equal(fresh.layer1[0].conv1.weight)
    assert scratch_epochs("scratch-e", 160, 1000, 400) == 160
    assert scratch_epochs("scratch-b", 160, 1000, 400) == 400
    with pytest.raises(ConfigError, match="retrain.mode"):
        scratch_epochs("scratch-x", 160, 1000, 400)  # type: ignore[arg-type]


def test_fine_tuned_masked_model_still_compacts_exactly() -> None:
    from prunebench.pruning.masking import KeepPruned

    model, shape = small_resnet()
    selection = prune_channels(model, shape, "fpgm", ChannelTarget("compression", 1.3), scope="layer")
    selection.mask.apply(model)
    keep = KeepPruned(model, selection.mask)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(3):  # momentum and weight decay would move pruned BN shifts without re-masking
        x, y = torch.randn(8, *shape, generator=g), torch.randint(0, 10, (8,), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        keep.on_step_end(0)
    model.eval()
    small = compact(model, selection.mask, shape).eval()
    x = torch.randn(4, *shape, generator=g)
    with torch.no_grad():
        assert (model(x) - small(x)).abs().max() < 1e-5
    assert sum(p.numel() for p in small.parameters()) == selection.achieved.params_kept


def test_excluded_layers_keep_their_channels() -> None:
    model = trained_like(create_model("vgg-11-bn", (3, 16, 16), 10))
    selection = prune_channels(model, (3, 16, 16), "l1_filter", ChannelTarget("channel_fraction", 0.5),
                               exclude=["features.0"])
    assert "features.0" not in selection.pruned and "features.0.weight" not in selection.mask
    small = compact(model, selection.mask, (3, 16, 16), exclude=["features.0"])
    assert small.features[0].out_channels == 64 and small.features[4].out_channels < 128
    with pytest.raises(ConfigError, match="exclude: 'features.99' is not a module"):
        prune_channels(model, (3, 16, 16), "l1_filter", ChannelTarget("channel_fraction", 0.5), exclude=["features.99"])
