"""Kernel granularity (`kernels-global`): whole k x k kernels (one output channel's weights on one
input channel) go together, the lowest mean |w| first, under one threshold for all layers.

Coarser than single weights, so a few more of them must stay for the same accuracy, but the mask
of a layer becomes one bit per kernel instead of one per weight: what a compressed file pays for
its mask falls nearly k x k-fold (the quantized format stores kernel masks that way). Linear and
1 x 1 weights are their own kernels. The total is exact, as for every method: where the threshold
falls inside a kernel, that one kernel is cut in part.
"""

from __future__ import annotations

import torch

from ..base import CRITERIA, PRUNERS, Criterion, ScoredPruner
from .global_ import GLOBAL


def kernel_l1(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Every weight scores the mean |w| of its kernel (the last two axes of a conv weight); the
    weights of a linear or 1 x 1 layer score their own |w|."""
    del generator  # deterministic
    w = weight.detach().abs()
    if w.dim() < 3:
        return w
    return w.mean(dim=tuple(range(2, w.dim())), keepdim=True).expand_as(w).contiguous()


KERNEL_L1 = CRITERIA.register(Criterion("kernel-l1", "mean |w| of the weight's k x k kernel", kernel_l1))
PRUNERS.register(ScoredPruner("kernels-global", KERNEL_L1, GLOBAL,
                              "whole k x k kernels, lowest mean |w| across all layers under one threshold"))
