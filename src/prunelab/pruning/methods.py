"""Named pruning methods: criterion x allocation (masks), N:M patterns and channel removal, resolved here."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import PrunelabError, unknown
from .criteria import CRITERIA
from .masks import ALLOCATIONS, Masks, check_sparsity, grow, nm_mask

UNSTRUCTURED, NM, CHANNELS = "unstructured", "nm", "channels"


@dataclass(frozen=True)
class Method:
    """A pruning method.

    Attributes:
        name: registry name.
        criterion: key of `CRITERIA` (how weights are scored).
        allocation: key of `ALLOCATIONS` (how the total is shared between layers); for channel
            methods "layerwise" or "global" over channel groups.
        stochastic: results depend on the seed (deterministic methods run once per level).
        description: one line for listings and reports.
        kind: "unstructured" (masks of single weights), "nm" (N:M masks, fixed sparsity) or
            "channels" (physical filter/channel removal, a smaller model).
        n_m: (N, M) for "nm": N of every M consecutive weights are kept.
    """

    name: str
    criterion: str
    allocation: str
    stochastic: bool
    description: str
    kind: str = UNSTRUCTURED
    n_m: tuple[int, int] | None = None

    @property
    def fixed_sparsity(self) -> float | None:
        """The only sparsity an N:M method has, 1 - N/M; None for methods that take any level."""
        return 1.0 - self.n_m[0] / self.n_m[1] if self.n_m else None


def _nm(n: int, m: int) -> Method:
    return Method(f"nm-{n}:{m}", "l1", "nm", False,
                  f"keep the {n} largest |w| of every {m} consecutive input channels at each kernel position "
                  f"(sparsity fixed at {1 - n / m:.0%})", kind=NM, n_m=(n, m))


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("layerwise", "l1", "layerwise", False,
               "lowest |w| in every layer, same fraction per layer (the classic study)"),
        Method("global", "l1", "global", False,
               "lowest |w| across all layers under one threshold"),
        Method("random", "random", "layerwise", True,
               "random weights, same fraction per layer (the control)"),
        Method("sensitivity", "l1", "sensitivity", False,
               "lowest |w| per layer, fractions from a sensitivity profile (--sensitivity)"),
        _nm(2, 4),
        Method("channels-layerwise", "filter-l1", "layerwise", False,
               "remove the filters/channels of lowest L1 norm, same channel fraction per group "
               "(Li et al. 2017), physically", kind=CHANNELS),
        Method("channels-global", "filter-l1", "global", False,
               "remove the filters/channels of lowest mean-normalised L1 norm across the network, "
               "physically", kind=CHANNELS),
    )
}

_NM_NAME = re.compile(r"nm-(\d+):(\d+)")


def get_method(name: str) -> Method:
    """Look a method up by name ('nm-N:M' for any N <= M), with close-name suggestions when unknown."""
    if name in METHODS:
        return METHODS[name]
    match = _NM_NAME.fullmatch(name)
    if match:
        n, m = int(match[1]), int(match[2])
        if m < 1 or n > m:
            raise PrunelabError(f"method '{name}': N:M needs 0 <= N <= M and M >= 1")
        return _nm(n, m)
    raise unknown("method", name, METHODS)


def compute_masks(method: Method, weights: dict[str, torch.Tensor], sparsity: float, seed: int = 0,
                  prior: Masks | None = None, layer_cap: float | None = None,
                  profile: dict | None = None) -> Masks:
    """Masks for pruning `weights` to `sparsity` with `method`; reads weights, never writes them.

    Args:
        method: what to rank by and how to share the total between layers (a mask method).
        weights: prunable weights by parameter name (see `prunable_weights`); N:M methods skip
            nothing here, so pass them through `method_weights`.
        sparsity: target fraction of all these weights that are zero, in [0, 1]; N:M methods
            accept only their fixed sparsity 1 - N/M.
        seed: seeds the random criterion.
        prior: masks already in force; their pruned weights rank lowest and stay pruned.
        layer_cap: largest fraction any one layer may lose (global allocation only).
        profile: per-layer sensitivity curves (sensitivity allocation only).

    Returns:
        bool masks keyed by parameter name, True = kept, shaped like each weight.
    """
    sparsity = check_sparsity(sparsity)
    if method.kind == CHANNELS:
        raise PrunelabError(f"method '{method.name}' removes channels and has no masks; "
                            f"use prunelab.pruning.structured.prune_channels")
    criterion = CRITERIA[method.criterion]
    generator = torch.Generator().manual_seed(seed)
    scores = {}
    for name, w in weights.items():
        s = criterion(w, generator).float()
        if prior is not None and name in prior:
            s = s.masked_fill(~prior[name].to(s.device), float("-inf"))
        scores[name] = s
    if method.kind == NM:
        if abs(sparsity - method.fixed_sparsity) > 1e-9:
            raise PrunelabError(f"method '{method.name}' has a fixed sparsity of "
                                f"{method.fixed_sparsity:g}, not {sparsity:g}")
        n, m = method.n_m
        return grow(prior, {name: nm_mask(s, n, m, name) for name, s in scores.items()})
    allocate = ALLOCATIONS[method.allocation]
    return grow(prior, allocate(scores, sparsity, layer_cap=layer_cap, profile=profile))


def method_weights(method: Method, weights: dict[str, torch.Tensor], stem: str) -> dict[str, torch.Tensor]:
    """The weights a method prunes: N:M leaves the declared stem dense (its 3 input channels do
    not fill a group of M, and sparse kernels skip it); every other method takes all."""
    if method.kind == NM:
        return {k: v for k, v in weights.items() if k != f"{stem}.weight"}
    return weights
