"""Global magnitude: the lowest |w| across all layers under one threshold."""

from __future__ import annotations

import math

import torch

from ..base import ALLOCATIONS, PRUNERS, Allocation, PruneContext, ScoredPruner
from ..masks import Masks, check_sparsity, global_counts, lowest_k_mask, n_pruned
from .l1 import L1


def global_threshold(scores: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> Masks:
    """One threshold across all layers: the round(level * N) lowest scores of the whole network.
    With `ctx.layer_cap` no layer loses more than floor(cap * n_layer) weights; the excess goes to
    the other layers (so the total stays exact while it fits under the caps)."""
    total = sum(s.numel() for s in scores.values())
    k = n_pruned(level, total)
    if ctx.layer_cap is None:
        caps = {n: s.numel() for n, s in scores.items()}
    else:
        check_sparsity(ctx.layer_cap, "layer cap")
        caps = {n: math.floor(ctx.layer_cap * s.numel()) for n, s in scores.items()}
    counts = global_counts(scores, min(k, sum(caps.values())), caps)
    return {n: lowest_k_mask(s, counts[n]) for n, s in scores.items()}


GLOBAL = ALLOCATIONS.register(Allocation("global", "one threshold over all layers (--layer-cap)",
                                         global_threshold))
PRUNERS.register(ScoredPruner("global", L1, GLOBAL, "lowest |w| across all layers under one threshold"))
