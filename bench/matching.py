"""The level at which a channel method's network measures closest to a target, shared by the
structured benchmarks (equal MACs, equal predicted latency)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn


def closest_level(method: str, model: nn.Module, ctx, target: float, measure: Callable[[nn.Module], float],
                  steps: int = 14) -> tuple[float, float]:
    """(level, measure) of `method` closest to `target`, by bisection on the level with the method's
    channel choice alone: a refit changes weights, not shapes, so it need not run at every step.
    `measure` must fall as the level rises (MACs, seconds)."""
    from prunelab.pruning import PRUNERS
    from prunelab.pruning.methods.channels import ChannelPruner

    pruner = PRUNERS.get(method)
    shapes = ChannelPruner(pruner.name, pruner.allocation, pruner.criterion, "", pruner.keep_stream)
    lo, hi, best = 0.0, 0.95, None
    for _ in range(steps):
        level = (lo + hi) / 2
        value = measure(shapes.prune(copy.deepcopy(model), level, ctx).model)
        if best is None or abs(value - target) < abs(best[1] - target):
            best = (level, value)
        lo, hi = (level, hi) if value > target else (lo, level)
    return best
