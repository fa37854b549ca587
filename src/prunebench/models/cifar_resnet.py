"""CIFAR ResNets of depth 6n+2 (He et al. 2016, "Deep Residual Learning", Section 4.2).

Three stages of n basic blocks with 16, 32 and 64 filters on 32x32 inputs; the first block of
stages 2 and 3 halves the feature map. Shortcuts are option A: identity, and where the width
doubles, a stride-2 subsample zero-padded to the new width, so shortcuts add no parameters.

Channel pruning: a zero-padded shortcut copies channels between stages at fixed offsets, which
a channel-dependency graph cannot follow. Like Li et al. 2017 (who prune only the first layer
of each residual block of ResNet-56/110), these models therefore keep the residual stream
whole: ``fixed_channel_layers`` names the convolutions that write to it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.models.base import MODELS


class PadShortcut(nn.Module):
    """Option-A shortcut: take every second pixel, zero-pad the new channels on both sides."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        extra = out_planes - in_planes
        self.pad_front, self.pad_back = extra // 2, extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad_front, self.pad_back))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = (
            PadShortcut(in_planes, planes) if stride != 1 or in_planes != planes else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages: list[nn.Module] = []
        in_planes = width
        for i, planes in enumerate((width, 2 * width, 4 * width)):
            layers = []
            for b in range(blocks):
                stride = 2 if i > 0 and b == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
        # Convolutions writing to the residual stream (see the module docstring).
        self.fixed_channel_layers: tuple[str, ...] = ("conv1",) + tuple(
            f"layer{s}.{b}.conv2" for s in (1, 2, 3) for b in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def check_image_shape(name: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"{name} needs image inputs (channels, height, width), got {input_shape}")


def register_depth(depth: int) -> None:
    name = f"resnet-{depth}"

    def factory(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        check_image_shape(name, input_shape)
        return CifarResNet(depth, input_shape[0], num_classes)

    factory.__doc__ = f"CIFAR ResNet-{depth} with option-A shortcuts (He et al. 2016)."
    MODELS.add(name, factory)


for _depth in (20, 32, 44, 56, 110):
    register_depth(_depth)
