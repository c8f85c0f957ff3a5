"""CIFAR ResNets (He et al. 2016): ResNet-20/32/44/56/110 with option-A shortcuts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import IMAGENET_MEAN, IMAGENET_STD, register_model


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad channels; no parameters."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (option A) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes = stride != 1 or in_planes != planes
        self.shortcut = PadShortcut(planes - in_planes) if changes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: 16/32/64 channels, strides 1/2/2, parameter names as
    in akamaster/pytorch_resnet_cifar10 (conv1, bn1, layer1..3, linear)."""

    def __init__(self, n: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes, layers = 16, []
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(planes, width, stride if i == 0 else 1))
                planes = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)


for _depth in (20, 32, 44, 56, 110):
    register_model(
        f"resnet{_depth}", classifier="linear", stem="conv1", mean=IMAGENET_MEAN, std=IMAGENET_STD,
        description=f"CIFAR ResNet-{_depth} (option-A shortcuts; loads akamaster checkpoints)", input_size=32,
    )(lambda num_classes, in_channels, n=(_depth - 2) // 6: CifarResNet(n, num_classes, in_channels))
