"""Sensitivity-guided magnitude: each layer loses the fraction its own curve tolerates (profile from
`prunelab sensitivity`), the lowest |w| within it."""

from __future__ import annotations

import math

import torch

from ...errors import PrunelabError
from ..base import ALLOCATIONS, PRUNERS, Allocation, PruneContext, ScoredPruner
from ..masks import Masks, lowest_k_mask, n_pruned
from .l1 import L1


def sensitivity_ratios(profile: dict, sizes: dict[str, int], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities that reach `sparsity` overall, pruning first where accuracy cares least.

    For an allowed drop d, each layer may go to the largest profiled level such that pruning that
    layer alone, at it and every lower level, kept top-1 within d of dense. The smallest d whose
    layer levels reach `sparsity` overall is found by bisection; the levels are then scaled down
    uniformly to hit `sparsity` exactly.

    Args:
        profile: {"dense_top1": float, "layers": {name: [[level, top1], ...]}}, as written by
            `prunelab sensitivity`.
        sizes: prunable weights per layer.
        sparsity: overall target in [0, 1].
    """
    missing = sorted(set(sizes) - set(profile["layers"]))
    if missing:
        raise PrunelabError(f"the sensitivity profile has no curve for {', '.join(missing[:3])}; "
                            f"profile the same model with the same --prune-classifier setting")
    total = sum(sizes.values())
    curves = {n: sorted((lv, acc) for lv, acc in profile["layers"][n]) for n in sizes}

    def allowed(drop: float) -> dict[str, float]:
        out = {}
        for name, curve in curves.items():
            level = 0.0
            for lv, acc in curve:
                if acc < profile["dense_top1"] - drop:
                    break
                level = lv
            out[name] = level
        return out

    def overall(levels: dict[str, float]) -> float:
        return sum(levels[n] * sizes[n] for n in sizes) / total

    most = overall(allowed(float("inf")))
    if most < sparsity:
        raise PrunelabError(f"the sensitivity profile reaches only {most:.0%} overall; profile "
                            f"higher levels (up to 1.0) to ask for {sparsity:.0%}")
    lo, hi = 0.0, 100.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if overall(allowed(mid)) >= sparsity else (mid, hi)
    levels = allowed(hi)
    reach = overall(levels)
    return {n: lv * sparsity / reach if reach else 0.0 for n, lv in levels.items()}


def by_sensitivity(scores: dict[str, torch.Tensor], sparsity: float, ctx: PruneContext) -> Masks:
    """Per-layer fractions from a sensitivity profile; exactly round(sparsity * N) weights in all."""
    profile = ctx.profile
    if profile is None:
        raise PrunelabError("the sensitivity method needs a profile: run 'prunelab sensitivity' and "
                            "pass --sensitivity RUN/sensitivity.json")
    sizes = {n: s.numel() for n, s in scores.items()}
    ratios = sensitivity_ratios(profile, sizes, sparsity)
    exact = {n: ratios[n] * sizes[n] for n in sizes}
    counts = {n: min(math.floor(v), sizes[n]) for n, v in exact.items()}
    short = n_pruned(sparsity, sum(sizes.values())) - sum(counts.values())
    for n in sorted(exact, key=lambda n: counts[n] - exact[n])[:max(short, 0)]:  # largest remainders
        counts[n] += 1
    return {n: lowest_k_mask(s, counts[n]) for n, s in scores.items()}


SENSITIVITY = ALLOCATIONS.register(Allocation("sensitivity", "per-layer fractions from a sensitivity profile",
                                              by_sensitivity, needs_profile=True))
PRUNERS.register(ScoredPruner("sensitivity", L1, SENSITIVITY,
                              "lowest |w| per layer, fractions from a sensitivity profile (--sensitivity)"))
