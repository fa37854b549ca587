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
