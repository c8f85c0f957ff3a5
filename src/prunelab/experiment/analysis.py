"""The answer from stored points: the largest sparsity within an accuracy budget, with a paired bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PrunelabError
from .store import DENSE, Point


@dataclass(frozen=True)
class Curve:
    """Accuracy against sparsity for one method, seeds averaged.

    Attributes:
        levels: target sparsities, ascending, shape (L,).
        sparsity: measured sparsity, mean over seeds, (L,).
        top1: top-1 percent, mean over seeds, (L,).
        top1_std: standard deviation over seeds, (L,) (0 for one seed).
        hits: per-image top-1 hit rate, mean over seeds, (L, N).
        seeds: number of seeds at each level (the minimum, if they differ).
        quantized: its points are quantized networks: the dense float model is not one of them.
    """

    method: str
    levels: np.ndarray
    sparsity: np.ndarray
    top1: np.ndarray
    top1_std: np.ndarray
    hits: np.ndarray
    seeds: int
    quantized: bool = False


@dataclass(frozen=True)
class Answer:
    """How much of the network can go for one method.

    Attributes:
        sparsity: largest swept target sparsity such that it and every lower level keep top-1
            within `budget` points of dense; NaN if none does (a quantized method, whose curve does
            not start at the dense float model, can miss the budget at its lowest level).
        measured_sparsity: counted sparsity at that level.
        top1, dense_top1: percent.
        ci_low, ci_high: 2.5 and 97.5 percentiles of the same answer over bootstrap resamples
            of the test images (paired: one resample serves dense and every level).
        n_boot: bootstrap replicates.
    """

    method: str
    sparsity: float
    measured_sparsity: float
    top1: float
    dense_top1: float
    budget: float
    ci_low: float
    ci_high: float
    n_boot: int

    @property
    def drop(self) -> float:
        return self.dense_top1 - self.top1

    @property
    def found(self) -> bool:
        """Some level is within the budget."""
        return not np.isnan(self.sparsity)


def split(points: list[Point]) -> tuple[Point, dict[str, Curve]]:
    """Separate the dense baseline from the per-method curves."""
    dense = [p for p in points if p.method == DENSE]
    if not dense:
        raise PrunelabError("the store has no dense baseline; rerun 'prunelab sweep' to compute it")
    by_method: dict[str, dict[float, list[Point]]] = {}
    for p in points:
        if p.method != DENSE:
            by_method.setdefault(p.method, {}).setdefault(p.target_sparsity, []).append(p)
    curves = {}
    for method, by_level in by_method.items():
        levels = sorted(by_level)
        rows = [by_level[s] for s in levels]
        curves[method] = Curve(
            method=method,
            levels=np.array(levels),
            sparsity=np.array([np.mean([p.sparsity for p in r]) for r in rows]),
            top1=np.array([np.mean([p.top1 for p in r]) for r in rows]),
            top1_std=np.array([np.std([p.top1 for p in r]) for r in rows]),
            hits=np.stack([np.mean([p.hits for p in r], axis=0) for r in rows]),
            seeds=min(len(r) for r in rows),
            quantized=any(p.bits is not None for r in rows for p in r),
        )
    return dense[0], curves


def largest_within(top1: np.ndarray, dense_top1: np.ndarray, budget: float) -> np.ndarray:
    """Index of the last level of the leading run of levels within budget, -1 if none.

    Args:
        top1: (..., L) accuracies at ascending levels.
        dense_top1: (...) dense accuracy.
        budget: allowed drop in points.
    """
    ok = top1 >= dense_top1[..., None] - budget - 1e-9
    return np.cumprod(ok, axis=-1).sum(axis=-1) - 1


def check_budget(budget) -> float:
    """The accuracy budget as a finite number of points >= 0, or a one-line error."""
    number = not isinstance(budget, bool) and isinstance(budget, int | float)
    if not number or not np.isfinite(budget) or budget < 0:
        raise PrunelabError(f"the accuracy budget must be a finite number of points >= 0, got {budget!r}; "
                            f"e.g. --budget 1")
    return float(budget)


def answer(dense: Point, curve: Curve, budget: float = 1.0, n_boot: int = 2000, seed: int = 0
           ) -> Answer:
    """The largest sparsity of `curve` within `budget` points of `dense`, with its uncertainty.

    A float curve starts at the dense model (sparsity 0 is the dense model itself); a quantized
    one starts at its own lowest level. In a bootstrap replicate where no level is within the
    budget, the answer counts as 0."""
    check_budget(budget)
    start = [] if curve.quantized else [0.0]
    levels = np.concatenate([start, curve.levels])
    top1 = np.concatenate([[dense.top1] if start else [], curve.top1])
    measured = np.concatenate([start, curve.sparsity])
    hits = np.concatenate([dense.hits[None].astype(float), curve.hits]) if start else curve.hits  # (L, N)
    pick = int(largest_within(top1, np.array(dense.top1), budget))

    n = hits.shape[1]
    rng = np.random.default_rng(seed)
    picks = []
    for first in range(0, n_boot, 250):
        b = min(250, n_boot - first)
        draws = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        weights = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)  # times each image is drawn
        reference = 100.0 * weights @ dense.hits.astype(float) / n  # (B,)
        picks.append(largest_within(100.0 * weights @ hits.T / n, reference, budget))  # (B, L) -> (B,)
    chosen = np.concatenate(picks) if n_boot else np.array([pick])
    boot = np.where(chosen >= 0, levels[np.maximum(chosen, 0)], 0.0)
    at = (lambda a: float(a[pick])) if pick >= 0 else (lambda a: float("nan"))
    return Answer(curve.method, at(levels), at(measured), at(top1), float(dense.top1), budget,
                  float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)), n_boot)


@dataclass(frozen=True)
class Sized:
    """One (method, level) with a measured file, seeds averaged: a point of the memory trade-off."""

    method: str
    level: float
    file_bytes: float
    top1: float
    bits: int | None


def sized(points: list[Point]) -> list[Sized]:
    """Every (method, level) whose file was measured, seeds averaged, smallest file first."""
    groups: dict[tuple[str, float], list[Point]] = {}
    for p in points:
        if p.file_bytes is not None:
            groups.setdefault((p.method, p.target_sparsity), []).append(p)
    out = [Sized(m, lv, float(np.mean([p.file_bytes for p in g])), float(np.mean([p.top1 for p in g])),
                 g[0].bits) for (m, lv), g in groups.items()]
    return sorted(out, key=lambda s: (s.file_bytes, -s.top1))


def pareto(items: list[Sized]) -> list[Sized]:
    """The frontier: points no other point beats on both file size and top-1, smallest first."""
    front, best = [], -np.inf
    for s in sorted(items, key=lambda s: (s.file_bytes, -s.top1)):
        if s.top1 > best:
            front.append(s)
            best = s.top1
    return front


def smallest_within(items: list[Sized], dense_top1: float, budget: float) -> Sized | None:
    """The smallest file whose network keeps top-1 within `budget` points of dense, if any."""
    ok = [s for s in items if s.top1 >= dense_top1 - budget - 1e-9]
    return min(ok, key=lambda s: (s.file_bytes, -s.top1)) if ok else None
