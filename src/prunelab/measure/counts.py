"""Counts: the one definition of sparsity (counted zeros of the prunable weights) and bytes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Counts:
    """Parameter counts of a (possibly masked) model.

    Attributes:
        prunable: weights pruning may touch.
        nonzero: of those, how many are not exactly zero.
        total: all parameters (prunable or not).
        per_layer: parameter name -> (zeros, size), prunable weights only.
    """

    prunable: int
    nonzero: int
    total: int
    per_layer: dict[str, tuple[int, int]]

    @property
    def sparsity(self) -> float:
        """The one definition: fraction of prunable weights that are exactly zero."""
        return 1.0 - self.nonzero / self.prunable if self.prunable else 0.0


def count(model: nn.Module, prunable: Iterable[str]) -> Counts:
    """Count zeros in `model`'s prunable weights (measured, not requested, sparsity)."""
    params = dict(model.named_parameters())
    per_layer = {}
    for name in prunable:
        w = params[name].detach()
        per_layer[name] = (int((w == 0).sum()), w.numel())
    size = sum(n for _, n in per_layer.values())
    zeros = sum(z for z, _ in per_layer.values())
    total = sum(p.numel() for p in model.parameters())
    return Counts(size, size - zeros, total, per_layer)


def dense_bytes(model: nn.Module) -> int:
    """Bytes of every tensor in the state dict stored densely (what a plain checkpoint holds)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def sparse_bytes(model: nn.Module, counts: Counts) -> int:
    """Bytes of a bitmask encoding: prunable weights as 1 bit each + their nonzero values; the
    rest dense. Computed from counts (theory for an encoding, not a file on disk)."""
    state = model.state_dict()
    itemsize = {name: state[name].element_size() for name in counts.per_layer}
    masked = sum((n + 7) // 8 + (n - z) * itemsize[name] for name, (z, n) in counts.per_layer.items())
    rest = sum(t.numel() * t.element_size() for k, t in state.items() if k not in counts.per_layer)
    return masked + rest


def weight_density(counts: Counts) -> dict[str, float]:
    """Module name -> fraction of its weight that is nonzero, for the prunable layers of `counts`."""
    return {name.removesuffix(".weight"): 1.0 - z / n for name, (z, n) in counts.per_layer.items() if n}
