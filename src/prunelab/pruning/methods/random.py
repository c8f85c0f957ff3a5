"""The control: random weights, the same fraction per layer; any criterion has to beat it."""

from __future__ import annotations

import torch

from ..base import CRITERIA, PRUNERS, Criterion, ScoredPruner
from .layerwise import LAYERWISE


def uniform(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform random scores, drawn on the CPU from the seeded generator (the same on any device)."""
    return torch.rand(weight.shape, generator=generator, device="cpu").to(weight.device)


RANDOM = CRITERIA.register(Criterion("random", "uniform random scores (seeded)", uniform))
PRUNERS.register(ScoredPruner("random", RANDOM, LAYERWISE,
                              "random weights, same fraction per layer (the control)", stochastic=True))
