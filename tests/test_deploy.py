"""Deployment forms: BN folding computes what the eval model computes, for every registered
model (those with BatchNorm lose every one of them) and for a compacted channel-pruned model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.errors import ConfigError
from prunebench.models import MODELS, create_model
from prunebench.models.deploy import FORMS, deployment_form, fold_batchnorm, prepare_input


def image_shape(name: str) -> tuple[int, int, int]:
    """The smallest input each model takes: 32 for the 224-models, 16 for VGG, 28x28 grey for LeNets."""
    if name in ("resnet-18", "resnet-50", "mobilenet-v2"):
        return (3, 32, 32)
    if name.startswith("lenet") or name == "mlp":
        return (1, 28, 28)
    return (3, 16, 16) if name.startswith("vgg") else (3, 8, 8)


def batchnorms(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def randomize_batchnorm(model: nn.Module, shape: tuple[int, ...], seed: int = 1) -> None:
    """Random BN scales and shifts, running statistics from a random batch and then perturbed:
    stats a trained model could have, so a deep ResNet's activations stay of order one."""
    g = torch.Generator().manual_seed(seed)
    bns = [bn for bn in batchnorms(model) if bn.track_running_stats]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.2)
            bn.momentum = None  # cumulative average: the stats are exactly this batch's
            bn.reset_running_stats()
        model.train()
        model(torch.randn(8, *shape, generator=g, dtype=next(model.parameters()).dtype))
        for bn in bns:
            bn.running_var.mul_(torch.rand(bn.num_features, generator=g, dtype=bn.running_var.dtype) + 0.5)
            bn.running_mean.add_(torch.randn(bn.num_features, generator=g, dtype=bn.running_mean.dtype)
                                 * 0.2 * bn.running_var.sqrt())
            bn.momentum = 0.1
    model.eval()


def max_difference(a: nn.Module, b: nn.Module, shape: tuple[int, ...], form: str = "bn-folded") -> float:
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(2), dtype=next(a.parameters()).dtype)
    with torch.no_grad():
        return float((a(x) - b(prepare_input(x, form))).abs().max())


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("name", MODELS.names())
def test_folding_matches_the_eval_model_for_every_registered_model(name: str) -> None:
    """In float64 the fold's algebra is checked to 1e-5 without float32 rounding accumulating
    over a 110-layer ResNet; float32 is checked relative to the output's size."""
    shape = image_shape(name)
    torch.manual_seed(0)
    model = create_model(name, shape, 10).double()
    randomize_batchnorm(model, shape)
    before = len(batchnorms(model))
    folded = fold_batchnorm(model)
    assert not batchnorms(folded)  # every BN of a registered model follows a conv (or Linear)
    assert len(batchnorms(model)) == before  # the original is left as it was
    assert type(folded) is type(model)
    assert max_difference(model, folded, shape) < 1e-5
    single, folded32 = model.float(), fold_batchnorm(model.float())
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = single(x)
        assert float((expected - folded32(x)).abs().max()) < 1e-4 * max(1.0, float(expected.abs().max()))


def test_folding_a_compact_channel_pruned_model() -> None:
    pytest.importorskip("torch_pruning")
    from prunebench.pruning.channels import ChannelTarget, prune_channels
    from prunebench.pruning.compact import compact

    shape = (3, 8, 8)
    torch.manual_seed(0)
    model = create_model("resnet-20", shape, 10)
    randomize_batchnorm(model, shape)
    selection = prune_channels(model, shape, "l1_filter", ChannelTarget("speedup", 2.0))
    small = compact(model, selection.mask, shape).double().eval()
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    for form in FORMS:
        deployed = deployment_form(small, form)
        assert max_difference(small, deployed, shape, form) < 1e-5
        assert (form == "eager") == bool(batchnorms(deployed))


def test_linear_batchnorm_and_unfoldable_pairs() -> None:
    """Linear -> BN1d folds; a BN whose input another layer also reads, or one without running
    statistics, stays."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.bn = nn.Linear(6, 5), nn.BatchNorm1d(5)
            self.conv, self.conv_bn, self.free_bn = nn.Conv2d(5, 5, 1), nn.BatchNorm2d(5), nn.BatchNorm2d(5, track_running_stats=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.bn(self.fc(x))[:, :, None, None]
            c = self.conv(h)
            return (self.conv_bn(c) + c + self.free_bn(self.conv(h))).flatten(1)

    torch.manual_seed(0)
    model = Shared().double()
    randomize_batchnorm(model, (6,))
    folded = fold_batchnorm(model)
    assert isinstance(folded.bn, nn.Identity)
    assert isinstance(folded.conv_bn, nn.BatchNorm2d) and isinstance(folded.free_bn, nn.BatchNorm2d)
    assert max_difference(model, folded, (6,)) < 1e-10


def test_channels_last_form_and_unknown_form() -> None:
    model = create_model("resnet-20", (3, 8, 8), 10)
    deployed = deployment_form(model, "bn-folded-channels-last")
    assert deployed.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert prepare_input(torch.zeros(2, 3, 8, 8), "bn-folded-channels-last").is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="allowed: eager, bn-folded, bn-folded-channels-last"):
        deployment_form(model, "fused")
