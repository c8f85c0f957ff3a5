"""Second-order one-shot pruning solved exactly, row by row (`obc-global`, `obc-seq-global`,
`obc-res-global`; ExactOBS of Frantar & Alistarh 2022): the `obs-*` methods of the same names with
`exact_obs` for SparseGPT's left-to-right solver. Each row prunes greedily with its own inverse
Hessian, updated after every drop, and the rows of a layer compete for its share: less output error
than SparseGPT's one pass left to right (`bench/obs_solvers.py` measures both), at seconds rather
than a tenth of one for a layer of 64 x 576 on the CPU, and a copy of H⁻¹ per row in memory (for
CIFAR-sized layers). The layer shares are the same magnitude allocation."""

from __future__ import annotations

from ..base import PRUNERS
from .obs import OBS

PRUNERS.register(OBS("obc-global", "second-order as obs-global, each row solved exactly (ExactOBS: greedy, "
                                   "H⁻¹ updated after every drop; rows compete for the layer's share)",
                     counts="global", exact=True))
PRUNERS.register(OBS("obc-seq-global", "obc-global layer after layer, as obs-seq-global",
                     counts="global", sequential=True, exact=True))
PRUNERS.register(OBS("obc-res-global", "obc-global fitted as obs-res-global: layer after layer, each block's "
                                       "last conv also making up for the residual stream's drift",
                     counts="global", residual=True, exact=True))
