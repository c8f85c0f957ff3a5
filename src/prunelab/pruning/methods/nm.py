"""N:M semi-structured sparsity (`nm-N:M`): of every M consecutive input channels feeding one output
at one kernel position, the N largest |w| stay; the pattern sparse tensor cores read."""

from __future__ import annotations

import re

import torch
from torch import nn

from ...errors import PrunelabError
from ..base import PRUNERS, MaskPruner, PruneContext
from ..masks import Masks, grow, nm_mask


class NM(MaskPruner):
    """Keep the N largest |w| of every M; the sparsity is fixed at 1 - N/M. The declared stem stays
    dense (its 3 input channels fill no group of M, and sparse kernels skip it)."""

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.name = f"nm-{n}:{m}"
        self.fixed_level = 1.0 - n / m
        self.description = (f"keep the {n} largest |w| of every {m} consecutive input channels at each "
                            f"kernel position (sparsity fixed at {1 - n / m:.0%})")

    def weights(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        stem = f"{ctx.card.info.stem}.weight"
        return {k: w for k, w in super().weights(model, ctx).items() if k != stem}

    def masks(self, weights: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> Masks:
        self.check_level(level)
        scores = {}
        for name, w in weights.items():
            s = w.detach().abs().float()
            if ctx.prior is not None and name in ctx.prior:
                s = s.masked_fill(~ctx.prior[name].to(s.device), float("-inf"))
            scores[name] = s
        return grow(ctx.prior, {name: nm_mask(s, self.n, self.m, name) for name, s in scores.items()})


def _build(match: re.Match) -> NM:
    n, m = int(match[1]), int(match[2])
    if m < 1 or n > m:
        raise PrunelabError(f"method '{match[0]}': N:M needs 0 <= N <= M and M >= 1")
    return NM(n, m)


PRUNERS.register(NM(2, 4))
PRUNERS.pattern(r"nm-(\d+):(\d+)", "nm-N:M", _build)
