"""224x224 models written natively: ResNet-18/50 (He et al. 2016) and MobileNetV2 (Sandler et
al. 2018). Module names follow torchvision's, so its pretrained state_dicts load unchanged
where torchvision is available (timm's ResNets use the same names; timm's MobileNetV2 names
are mapped, ``timm_mobilenet_v2_key``); neither library is needed.

ResNet-50 puts the stride on the 3x3 convolution of a bottleneck ("ResNet v1.5"), like
torchvision. Shortcuts that change shape are 1x1 convolution + BN (option B), so residual
channels are pruned together with every layer that reads or writes them.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.base import MODELS
from prunebench.models.checkpoint import register_layout
from prunebench.models.cifar_resnet import check_image_shape


def conv_bn(in_planes: int, planes: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_planes, planes, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(planes)]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_planes, planes, 3, stride)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_planes, planes, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3, stride)
        self.conv3, self.bn3 = conv_bn(planes, planes * 4, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], counts: tuple[int, ...],
                 in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for b in range(count):
                downsample = None
                if b == 0 and (stride != 1 or in_planes != planes * block.expansion):
                    downsample = nn.Sequential(*conv_bn(in_planes, planes * block.expansion, 1, stride))
                blocks.append(block(in_planes, planes, stride if b == 0 else 1, downsample))
                in_planes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class ConvBNReLU6(nn.Sequential):
    def __init__(self, in_planes: int, planes: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_planes, planes, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, linear project (1x1); identity shortcut when shapes match."""

    def __init__(self, in_planes: int, planes: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_planes * expand
        self.use_res_connect = stride == 1 and in_planes == planes
        layers: list[nn.Module] = [ConvBNReLU6(in_planes, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, planes, 1, bias=False), nn.BatchNorm2d(planes)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    # (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, 32, 3, stride=2)]
        width = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(width, c, s if i == 0 else 1, t))
                width = c
        layers.append(ConvBNReLU6(width, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


@MODELS.register("resnet-18")
def resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    check_image_shape("resnet-18", input_shape)
    return ResNet(BasicBlock, (2, 2, 2, 2), input_shape[0], num_classes)


@MODELS.register("resnet-50")
def resnet50(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    check_image_shape("resnet-50", input_shape)
    return ResNet(Bottleneck, (3, 4, 6, 3), input_shape[0], num_classes)


@MODELS.register("mobilenet-v2")
def mobilenet_v2(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    check_image_shape("mobilenet-v2", input_shape)
    return MobileNetV2(input_shape[0], num_classes)


# timm's MobileNetV2 keeps this layout under EfficientNet names: conv_stem/bn1, blocks.S.I (the
# first a depthwise-separable block: conv_dw, bn1, conv_pw, bn2; the others conv_pw, bn1, conv_dw,
# bn2, conv_pwl, bn3), conv_head/bn2 and a bare classifier.
_TIMM_BLOCK = {
    "conv_pw": "conv.0.0", "bn1": "conv.0.1", "conv_dw": "conv.1.0", "bn2": "conv.1.1", "conv_pwl": "conv.2", "bn3": "conv.3",
}
_TIMM_SEPARABLE = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}
_TIMM_TOP = {"conv_stem": "features.0.0", "bn1": "features.0.1", "classifier": "classifier.1",
             "conv_head": f"features.{1 + sum(n for _, _, n, _ in MobileNetV2.SETTINGS)}.0",
             "bn2": f"features.{1 + sum(n for _, _, n, _ in MobileNetV2.SETTINGS)}.1"}


@register_layout("mobilenet-v2", "timm")
def timm_mobilenet_v2_key(key: str) -> str:
    """``blocks.1.0.conv_pw.weight`` -> ``features.2.conv.0.0.weight``; unknown keys stay as they are."""
    parts = key.split(".")
    if parts[0] == "blocks" and len(parts) == 5 and parts[1].isdigit() and parts[2].isdigit():
        stage, index, module, leaf = int(parts[1]), int(parts[2]), parts[3], parts[4]
        names = _TIMM_SEPARABLE if stage == 0 else _TIMM_BLOCK
        if stage < len(MobileNetV2.SETTINGS) and module in names:
            feature = 1 + sum(n for _, _, n, _ in MobileNetV2.SETTINGS[:stage]) + index
            return f"features.{feature}.{names[module]}.{leaf}"
    elif len(parts) == 2 and parts[0] in _TIMM_TOP:
        return f"{_TIMM_TOP[parts[0]]}.{parts[1]}"
    return key
