"""VGG with batch normalization for 32x32 inputs (Simonyan & Zisserman 2015, configurations
A, B, D, E), in the CIFAR form used by Liu et al. 2017 (network slimming) and Liu et al. 2019:
3x3 convolutions with BN and ReLU, max-pooling between stages, then global average pooling and
one Linear classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.base import MODELS
from prunebench.models.cifar_resnet import check_image_shape

POOL = 0
CONFIGS: dict[int, list[int]] = {
    11: [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512],
    13: [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512],
    16: [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512],
    19: [64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
         512, 512, 512, 512],
}


class VGG(nn.Module):
    def __init__(self, config: list[int], in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for item in config:
            if item == POOL:
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(width, item, 3, padding=1, bias=False), nn.BatchNorm2d(item),
                           nn.ReLU(inplace=True)]
                width = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def register_depth(depth: int) -> None:
    name = f"vgg-{depth}-bn"

    def factory(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        check_image_shape(name, input_shape)
        return VGG(CONFIGS[depth], input_shape[0], num_classes)

    factory.__doc__ = f"CIFAR VGG-{depth} with batch normalization."
    MODELS.add(name, factory)


for _depth in CONFIGS:
    register_depth(_depth)
