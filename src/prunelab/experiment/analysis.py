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
    """

    method: str
    levels: np.ndarray
    sparsity: np.ndarray
    top1: np.ndarray
    top1_std: np.ndarray
    hits: np.ndarray
    seeds: int


@dataclass(frozen=True)
class Answer:
    """How much of the network can go for one method.

    Attributes:
        sparsity: largest swept target sparsity such that it and every lower level keep top-1
            within `budget` points of dense.
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


def answer(dense: Point, curve: Curve, budget: float = 1.0, n_boot: int = 2000, seed: int = 0
           ) -> Answer:
    """The largest sparsity of `curve` within `budget` points of `dense`, with its uncertainty."""
    if budget < 0:
        raise PrunelabError(f"the accuracy budget must be >= 0 points, got {budget}")
    levels = np.concatenate([[0.0], curve.levels])  # sparsity 0 is the dense model itself
    top1 = np.concatenate([[dense.top1], curve.top1])
    pick = int(largest_within(top1, np.array(dense.top1), budget))
    measured = np.concatenate([[0.0], curve.sparsity])

    hits = np.concatenate([dense.hits[None].astype(float), curve.hits])  # (L+1, N)
    n = hits.shape[1]
    rng = np.random.default_rng(seed)
    picks = []
    for start in range(0, n_boot, 250):
        b = min(250, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        weights = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)  # times each image is drawn
        acc = 100.0 * weights @ hits.T / n  # (B, L+1)
        picks.append(largest_within(acc, acc[:, 0], budget))
    boot = levels[np.concatenate(picks)] if n_boot else levels[[pick]]
    return Answer(curve.method, float(levels[pick]), float(measured[pick]), float(top1[pick]),
                  float(dense.top1), budget, float(np.percentile(boot, 2.5)),
                  float(np.percentile(boot, 97.5)), n_boot)
