"""Where the residual blocks of the known families close: the last conv and batch norm of each
branch and its shortcut, for the pruners and initialisations that treat the residual sum apart."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ResidualBlock:
    """A block computing act(bn(conv(...)) + shortcut(x)) from its input x; names inside the block.

    Attributes:
        conv: the branch's last convolution.
        bn: the batch norm right after it, just before the add.
        shortcut: the module on the shortcut (None or an unset attribute: the identity).
    """

    conv: str
    bn: str
    shortcut: str | None

    def shortcut_of(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        module = getattr(block, self.shortcut, None) if self.shortcut else None
        return x if module is None else module(x)


def residual_blocks(model: nn.Module) -> dict[str, ResidualBlock]:
    """Block name -> its parts, for torchvision's Bottleneck and BasicBlock and the CIFAR ResNets'
    BasicBlock (in the order the forward meets them); other modules are not listed."""
    from torchvision.models.resnet import BasicBlock as TorchvisionBasic
    from torchvision.models.resnet import Bottleneck

    from .zoo.cifar import BasicBlock

    blocks = {}
    for name, m in model.named_modules():
        if isinstance(m, Bottleneck):
            blocks[name] = ResidualBlock("conv3", "bn3", "downsample")
        elif isinstance(m, TorchvisionBasic):
            blocks[name] = ResidualBlock("conv2", "bn2", "downsample")
        elif isinstance(m, BasicBlock):
            blocks[name] = ResidualBlock("conv2", "bn2", "shortcut")
    return blocks
