import pytest
import torch
from torch import nn

from prunebench.metrics import evaluate, mac_metrics, size_metrics
from prunebench.models import create_model
from prunebench.pruning import prunable_parameters


@pytest.mark.parametrize(("name", "macs"), [("lenet-300-100", 266_200), ("lenet-5", 2_293_000)])
def test_known_dense_mac_counts(name: str, macs: int) -> None:
    model = create_model(name, (1, 28, 28), 10)
    assert mac_metrics(model, (1, 28, 28)).dense_total == macs


def test_effective_macs_follow_weight_density() -> None:
    model = create_model("lenet-300-100", (1, 28, 28), 10)
    with torch.no_grad():
        model[1].weight[:, : 784 // 2] = 0  # half of the first layer
    macs = mac_metrics(model, (1, 28, 28))
    assert macs.effective["1"] == 235_200 // 2
    assert macs.effective_total == 266_200 - 235_200 // 2
    assert macs.theoretical_speedup == pytest.approx(266_200 / (266_200 - 117_600))


def test_functional_matmul_in_a_parent_forward_is_counted() -> None:
    class Bilinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(4, 3)
            self.extra = nn.Parameter(torch.ones(3, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) @ self.extra

    macs = mac_metrics(Bilinear(), (4,))
    assert macs.dense == {"": 15, "inner": 12}


def test_size_metrics_definitions() -> None:
    model = create_model("lenet-300-100", (1, 28, 28), 10)
    prunable = prunable_parameters(model)
    with torch.no_grad():
        model[1].weight.view(-1)[:1000] = 0
    sizes = size_metrics(model, prunable)
    total = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert sizes.params_total == total
    assert sizes.params_nonzero == total - 1000
    assert sizes.prunable_total == 784 * 300 + 300 * 100
    assert sizes.compression_ratio == pytest.approx(total / (total - 1000))
    assert sizes.prunable_compression_ratio == pytest.approx(sizes.prunable_total / (sizes.prunable_total - 1000))
    assert sizes.layer_sparsity["1.weight"] == pytest.approx(1000 / (784 * 300))
    assert sizes.sparsity == pytest.approx(1000 / sizes.prunable_total)


def test_top1_top5_and_loss_over_every_example() -> None:
    logits = torch.tensor([[9.0, 1, 2, 3, 4, 5, 0], [0.0, 9, 8, 7, 6, 5, 4], [1.0, 2, 3, 4, 5, 6, 7]])
    labels = torch.tensor([0, 0, 1])

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits[x.long().view(-1)]

    result = evaluate(Fixed(), torch.arange(3).float().view(3, 1), labels, batch_size=2)
    assert result.examples == 3
    assert result.top1 == pytest.approx(1 / 3)  # only the first is right
    assert result.top5 == pytest.approx(1 / 3)  # label 0 of row 2 is its lowest; label 1 of row 3 is 6th
    expected_loss = nn.functional.cross_entropy(logits, labels).item()
    assert result.loss == pytest.approx(expected_loss, rel=1e-6)
