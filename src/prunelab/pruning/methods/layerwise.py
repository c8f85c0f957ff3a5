"""The classic study's method: the lowest |w| in every layer, the same fraction per layer."""

from __future__ import annotations

import torch

from ..base import ALLOCATIONS, PRUNERS, Allocation, PruneContext, ScoredPruner
from ..masks import Masks, lowest_k_mask, n_pruned
from .l1 import L1


def layerwise(scores: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> Masks:
    """The same fraction in every layer: round(level * n_layer) lowest scores each."""
    return {name: lowest_k_mask(s, n_pruned(level, s.numel())) for name, s in scores.items()}


LAYERWISE = ALLOCATIONS.register(Allocation("layerwise", "the same fraction in every layer", layerwise))
PRUNERS.register(ScoredPruner("layerwise", L1, LAYERWISE,
                              "lowest |w| in every layer, same fraction per layer (the classic study)"))
