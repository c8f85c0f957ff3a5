"""The embedded demo's small CNN: three conv-BN-ReLU layers, global pooling, a linear classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers, global pooling and a linear classifier; for tiny images."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


register_model("smallcnn", classifier="fc", stem="conv1", mean=(0.5,), std=(0.5,),
               description="small 3-layer CNN for the embedded digits demo")(
    lambda num_classes, in_channels: SmallCNN(num_classes, in_channels))
