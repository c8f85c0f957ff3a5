"""Named pruning methods: criterion x allocation, resolved from strings only here."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import unknown
from .criteria import CRITERIA
from .masks import ALLOCATIONS, Masks, check_sparsity, grow


@dataclass(frozen=True)
class Method:
    """An unstructured pruning method.

    Attributes:
        name: registry name.
        criterion: key of `CRITERIA` (how weights are scored).
        allocation: key of `ALLOCATIONS` (how the total is shared between layers).
        stochastic: results depend on the seed (deterministic methods run once per level).
        description: one line for listings and reports.
    """

    name: str
    criterion: str
    allocation: str
    stochastic: bool
    description: str


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
    )
}


def get_method(name: str) -> Method:
    """Look a method up by name, with close-name suggestions when unknown."""
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]


def compute_masks(method: Method, weights: dict[str, torch.Tensor], sparsity: float, seed: int = 0,
                  prior: Masks | None = None, layer_cap: float | None = None,
                  profile: dict | None = None) -> Masks:
    """Masks for pruning `weights` to `sparsity` with `method`; reads weights, never writes them.

    Args:
        method: what to rank by and how to share the total between layers.
        weights: prunable weights by parameter name (see `prunable_weights`).
        sparsity: target fraction of all these weights that are zero, in [0, 1].
        seed: seeds the random criterion.
        prior: masks already in force; their pruned weights rank lowest and stay pruned.
        layer_cap: largest fraction any one layer may lose (global allocation only).
        profile: per-layer sensitivity curves (sensitivity allocation only).

    Returns:
        bool masks keyed by parameter name, True = kept, shaped like each weight.
    """
    sparsity = check_sparsity(sparsity)
    criterion, allocate = CRITERIA[method.criterion], ALLOCATIONS[method.allocation]
    generator = torch.Generator().manual_seed(seed)
    scores = {}
    for name, w in weights.items():
        s = criterion(w, generator).float()
        if prior is not None and name in prior:
            s = s.masked_fill(~prior[name].to(s.device), float("-inf"))
        scores[name] = s
    return grow(prior, allocate(scores, sparsity, layer_cap=layer_cap, profile=profile))
