"""The README's Python example, run as written."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs() -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README has a python example"
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    metrics = namespace["metrics"]
    assert metrics.sizes.compression_ratio == pytest.approx(8, rel=1e-3)
    assert metrics.top1 > 0.5


def test_api_keeps_pruned_weights_zero_and_validates_input() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(512, 20), torch.randint(0, 3, (512,))
    data = pb.DataSplits.from_tensors(train=(x[:400], y[:400]), test=(x[400:], y[400:]))
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    mask = pb.prune(model, data, strategy="act_magnitude", compression=3, scope="layer", score_batches=2)
    pb.finetune(model, data, mask, epochs=1, optimizer="adam", lr=1e-3)
    for name, keep in mask.items():
        assert torch.count_nonzero(dict(model.named_parameters())[name][~keep]) == 0
    with pytest.raises(ConfigError, match="strategy"):
        pb.prune(model, data, strategy="magnitud")
    with pytest.raises(ConfigError, match="epochs"):
        pb.finetune(model, data, mask, epochs=-1)


def test_api_channel_pruning_to_a_speedup() -> None:
    pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    x, y = torch.randn(256, 3, 8, 8), torch.randint(0, 10, (256,))
    data = pb.DataSplits.from_tensors(train=(x[:200], y[:200]), test=(x[200:], y[200:]))
    model = pb.create_model("resnet-20", (3, 8, 8), 10)
    mask = pb.prune(model, data, strategy="l1_filter", structure="channel", speedup=2.0, score_batches=1)
    metrics = pb.measure(model, data, mask)
    assert metrics.macs.theoretical_speedup >= 2.0
    # Prunable = the policy's weights (as in result.json), not every tensor the channel mask
    # touches: BN scales and shifts are pruned with their channels but are not "prunable".
    policy_weights = pb.prunable_parameters(model)
    assert any(".bn" in name for name in mask) and not any(".bn" in name for name in policy_weights)
    prunable_total = sum(p.numel() for p in policy_weights.values())
    prunable_nonzero = sum(int(torch.count_nonzero(p)) for p in policy_weights.values())
    assert metrics.sizes.prunable_compression_ratio == pytest.approx(prunable_total / prunable_nonzero)


def test_measure_refuses_a_model_that_left_its_mask() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(128, 10), torch.randint(0, 2, (128,))
    data = pb.DataSplits.from_tensors(train=(x[:100], y[:100]), test=(x[100:], y[100:]))
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    mask = pb.prune(model, data, strategy="magnitude", compression=2)
    pb.measure(model, data, mask)  # pruned and untouched: fine
    with torch.no_grad():
        model[0].weight.add_(1.0)  # training without the mask revives pruned weights
    with pytest.raises(ConfigError, match="not zero"):
        pb.measure(model, data, mask)
    with pytest.raises(ConfigError, match="does not fit"):
        pb.measure(nn.Sequential(nn.Linear(10, 2)), data, mask)


@pytest.mark.parametrize("seed", [-1, 2**70, True, 1.5])
def test_api_seeds_have_the_configs_range(seed: object) -> None:
    """A negative seed used to be accepted here though a config refuses it; 2**70 raised RuntimeError."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 2, (64,))
    data = pb.DataSplits.from_tensors(train=(x[:48], y[:48]), test=(x[48:], y[48:]))
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    for call in (lambda: pb.fit(model, data, seed=seed, epochs=1), lambda: pb.prune(model, data, seed=seed)):
        with pytest.raises(ConfigError, match=r"^seed: .* is not an integer from 0 to 2147483647$"):
            call()
    mask = pb.prune(model, data, compression=2, seed=0)
    with pytest.raises(ConfigError, match="^seed: "):
        pb.finetune(model, data, mask, seed=seed, epochs=1)


def _xy(n: int = 64, features: int = 5, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, features, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def _splits_bypassing_checks(train_y: torch.Tensor) -> pb.DataSplits:
    """A DataSplits built field by field, as a caller may do without from_tensors."""
    x, y = _xy()
    return pb.DataSplits(
        train_x=x[:40], train_y=train_y, val_x=x[40:48], val_y=y[40:48], test_x=x[48:], test_y=y[48:], num_classes=3
    )


X, Y = _xy()
FROM_TENSORS_CASES = {
    "train lengths differ": (dict(train=(X[:48], Y[:40]), test=(X[48:], Y[48:])), r"^train: x has 48 examples but y has 40"),
    "test lengths differ": (dict(train=(X[:48], Y[:48]), test=(X[48:], Y[50:])), r"^test: x has 16 examples but y has 14"),
    "empty train": (dict(train=(X[:0], Y[:0]), test=(X[48:], Y[48:])), r"^train: no examples"),
    "empty test": (dict(train=(X[:48], Y[:48]), test=(X[:0], Y[:0])), r"^test: no examples"),
    "negative label": (dict(train=(X[:48], Y[:48] - 1), test=(X[48:], Y[48:])), r"^train: label -1 is negative"),
    "fractional labels": (dict(train=(X[:48], Y[:48] + 0.5), test=(X[48:], Y[48:])), r"^train: labels must be whole-number"),
    "label past num_classes": (
        dict(train=(X[:48], Y[:48]), test=(X[48:], Y[48:]), num_classes=2), r"^num_classes: label 2 is not below num_classes=2"
    ),
    "num_classes 0": (dict(train=(X[:48], Y[:48]), test=(X[48:], Y[48:]), num_classes=0), r"^num_classes: 0 is not a positive"),
    "val_fraction 1": (dict(train=(X[:48], Y[:48]), test=(X[48:], Y[48:]), val_fraction=1.0), r"^val_fraction: 1.0 must be in \[0, 1\)"),
    "one label per example": (dict(train=(X[:48], Y[:48, None]), test=(X[48:], Y[48:])), r"^train: x needs an example dimension"),
    "not a pair": (dict(train=X[:48], test=(X[48:], Y[48:])), r"^train: expected a pair \(x, y\) of tensors"),
}


@pytest.mark.parametrize("case", FROM_TENSORS_CASES)
def test_from_tensors_refuses_bad_tensors_naming_the_argument(case: str) -> None:
    """Each used to raise IndexError/ValueError/RuntimeError, or to pass and mislead (0.5 read as class 0)."""
    kwargs, message = FROM_TENSORS_CASES[case]
    with pytest.raises(ConfigError, match=message):
        pb.DataSplits.from_tensors(**kwargs)


def _bn_model(features: int = 5) -> nn.Module:
    """Batch norm: a forward pass in training mode would move its running statistics."""
    return nn.Sequential(nn.Linear(features, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _other_mask() -> pb.Mask:
    x, y = _xy()
    data = pb.DataSplits.from_tensors(train=(x[:48], y[:48]), test=(x[48:], y[48:]))
    return pb.prune(nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)), data, compression=2)


def _data(shift_train: int = 0, shift_test: int = 0) -> pb.DataSplits:
    x, y = _xy()
    return pb.DataSplits.from_tensors(train=(x[:48], y[:48] + shift_train), test=(x[48:], y[48:] + shift_test))


API_CASES = {
    "fit, labels past the outputs": (
        lambda m: pb.fit(m, _data(shift_train=3), epochs=1), r"^data: label 5 is out of range; labels must be 0 to 2"
    ),
    "measure, test labels past the outputs": (lambda m: pb.measure(m, _data(shift_test=3)), r"^data: label 5 is out of range"),
    "prune, labels past the outputs": (
        lambda m: pb.prune(m, _data(shift_train=3), strategy="snip", compression=2), r"^data: label 5 is out of range"
    ),
    "fit, negative label in a hand-built DataSplits": (
        lambda m: pb.fit(m, _splits_bypassing_checks(_xy()[1][:40] - 1), epochs=1), r"^data: label -1 is out of range"
    ),
    "finetune, another model's mask": (
        lambda m: pb.finetune(m, _data(), _other_mask(), epochs=1), r"^mask: the mask does not fit this model .*'0.weight'"
    ),
    "prune, another model's previous mask": (
        lambda m: pb.prune(m, _data(), compression=2, previous=_other_mask()), r"^previous: the mask does not fit this model"
    ),
    "fit, inputs of another width": (
        lambda m: pb.fit(m, pb.DataSplits.from_tensors(train=_xy(48, 7), test=_xy(16, 7)), epochs=1),
        r"^data: the model cannot take inputs of shape \(7,\)",
    ),
    "model that is not a module": (lambda m: pb.fit("mlp", _data(), epochs=1), r"^model: expected a torch.nn.Module, got str"),
    "data that is not a DataSplits": (lambda m: pb.fit(m, _xy(), epochs=1), r"^data: expected a DataSplits"),
    "mask that is not a Mask": (
        lambda m: pb.finetune(m, _data(), {"0.weight": torch.ones(8, 5, dtype=torch.bool)}, epochs=1), r"^mask: expected a Mask"
    ),
}


@pytest.mark.parametrize("case", API_CASES)
def test_api_refuses_bad_calls_before_touching_the_model(case: str) -> None:
    """Each used to raise IndexError/ValueError/RuntimeError/AttributeError, most after training had begun."""
    call, message = API_CASES[case]
    torch.manual_seed(0)
    model = _bn_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=message):
        call(model)
    assert model.training and all(module.training for module in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "weights or running statistics moved"
