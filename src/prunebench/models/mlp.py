"""Fully connected networks: a small MLP for digits and LeNet-300-100 (LeCun et al. 1998)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from prunebench.models.base import MODELS, flat_size


class MLP(nn.Sequential):
    """Flatten, then Linear+ReLU for each hidden width, then a Linear classifier."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


@MODELS.register("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(flat_size(input_shape), (256, 128), num_classes)


@MODELS.register("lenet-300-100")
def lenet_300_100(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(flat_size(input_shape), (300, 100), num_classes)
