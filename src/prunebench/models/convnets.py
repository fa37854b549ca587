"""Conv-2, Conv-4 and Conv-6 (Frankle & Carbin 2019, "The Lottery Ticket Hypothesis", Fig. 2).

Pairs of 3x3 convolutions (64, 128, 256 filters) each followed by ReLU, a 2x2 max-pool after
each pair, then fully connected layers of 256, 256 and the classes. No batch normalization.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.base import MODELS, output_size
from prunebench.models.cifar_resnet import check_image_shape


class ConvNet(nn.Module):
    def __init__(self, pairs: int, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_shape[0]
        for planes in (64, 128, 256)[:pairs]:
            for _ in range(2):
                layers += [nn.Conv2d(width, planes, 3, padding=1), nn.ReLU(inplace=True)]
                width = planes
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(output_size(self.features, input_shape), 256), nn.ReLU(inplace=True),
            nn.Linear(256, 256), nn.ReLU(inplace=True),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def register_pairs(pairs: int) -> None:
    name = f"conv-{2 * pairs}"

    def factory(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        check_image_shape(name, input_shape)
        return ConvNet(pairs, input_shape, num_classes)

    factory.__doc__ = f"Conv-{2 * pairs} of Frankle & Carbin 2019."
    MODELS.add(name, factory)


for _pairs in (1, 2, 3):
    register_pairs(_pairs)
