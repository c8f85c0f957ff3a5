"""Magnitude: a weight's |w| (its L1 norm), as `torch.nn.utils.prune.l1_unstructured` ranks them."""

from __future__ import annotations

import torch

from ..base import CRITERIA, Criterion


def l1(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """|w|; low = pruned first."""
    del generator  # deterministic
    return weight.detach().abs()


L1 = CRITERIA.register(Criterion("l1", "magnitude |w|", l1))
