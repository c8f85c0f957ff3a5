"""LAMP (Lee et al. 2021): layer-adaptive magnitude scores, ranked under one global threshold.

A weight's score is its squared magnitude over the sum of the squared magnitudes of the weights
of its layer that are not smaller than it. Every layer's largest weight scores 1, and the scores
of one layer sum over a scale that makes layers of different sizes and magnitudes comparable, so
one threshold no longer empties small or low-magnitude layers first."""

from __future__ import annotations

import torch

from ..base import CRITERIA, PRUNERS, Criterion, ScoredPruner
from .global_ import GLOBAL


def lamp(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """LAMP scores of one layer's weights, shaped like `weight`; ties share one denominator."""
    del generator  # deterministic
    w2 = weight.detach().double().reshape(-1) ** 2
    ascending, order = torch.sort(w2)
    suffix = ascending.flip(0).cumsum(0).flip(0)  # sum of the squares from each position to the top
    first = torch.searchsorted(ascending, ascending, side="left")  # ties: from the first equal one
    scores = torch.empty_like(w2)
    scores[order] = ascending / suffix[first].clamp_min(torch.finfo(torch.float64).tiny)
    return scores.view(weight.shape).float()


LAMP = CRITERIA.register(Criterion("lamp", "layer-adaptive magnitude: w^2 over the sum of w^2 of the "
                                           "layer's weights not smaller (Lee et al. 2021)", lamp))
PRUNERS.register(ScoredPruner("lamp", LAMP, GLOBAL,
                              "lowest LAMP score across all layers under one threshold (Lee et al. 2021)"))
