"""The classic study's ResNet-50 for CIFAR: torchvision's, with a 3x3 stride-1 stem and no max-pool."""

from __future__ import annotations

from torch import nn

from ..registry import register_model


@register_model("resnet50", classifier="fc", stem="conv1",
                description="ResNet-50 CIFAR variant: 3x3 stride-1 stem, no max-pool, [3,4,6,3]",
                input_size=32)
def resnet50_cifar(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's ResNet-50 with the stem of the classic CIFAR study (23,520,842 params at 10 classes)."""
    from torchvision.models import resnet50

    net = resnet50(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net
