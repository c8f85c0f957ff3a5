"""Initialisations a recipe may ask for on a fresh model."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PrunelabError
from .residual import residual_blocks


def residual_branch_ends(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The batch norm that closes each residual branch, just before the add: bn3 of torchvision's
    Bottleneck, bn2 of its BasicBlock and of the CIFAR ResNets' BasicBlock."""
    return [getattr(model.get_submodule(name), block.bn) for name, block in residual_blocks(model).items()]


def zero_init_residual(model: nn.Module, name: str) -> None:
    """Start every residual branch at zero (its last batch norm's scale 0), so each block begins as
    the identity (Goyal et al. 2017): deep ResNets then train stably at large learning rates."""
    ends = residual_branch_ends(model)
    if not ends:
        raise PrunelabError(f"model '{name}' has no residual branches to zero-initialise; "
                            f"drop zero_init_residual from the recipe")
    with torch.no_grad():
        for bn in ends:
            bn.weight.zero_()
