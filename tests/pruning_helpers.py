"""Masks of a named method for given weights, as the tests ask for them (shared by the tests)."""

from prunelab.pruning import PRUNERS, PruneContext


def masks_of(method: str, weights: dict, level: float, seed: int = 0, prior=None, layer_cap=None,
             profile=None) -> dict:
    """The masks `method` computes for `weights` at `level` (masks only grow from `prior`)."""
    ctx = PruneContext(seed=seed, prior=prior, layer_cap=layer_cap, profile=profile)
    return PRUNERS.get(method).masks(weights, level, ctx)
