"""Weight sharing (Deep Compression, Han et al. 2016): one k-means codebook of 2^bits values per
layer, fitted to the kept weights only; each kept weight stores the index of its nearest value.

Linear initialisation over [min, max] (the paper found it best: it keeps the rare large weights
their own centroids), then Lloyd iterations in one dimension, exact and deterministic.
"""

from __future__ import annotations

import numpy as np
import torch

from ..base import QUANTIZERS, Quantizer, nonzero_never_zero

ITERATIONS = 50


def kmeans_1d(values: np.ndarray, k: int, iterations: int = ITERATIONS) -> np.ndarray:
    """Sorted centroids (k,) of 1-D k-means on `values`, linear initialisation; a layer with fewer
    distinct values than `k` gets those values themselves (lossless, never a larger codebook)."""
    distinct = np.unique(values)
    if distinct.size <= k:
        return distinct.astype(np.float64)
    x = np.sort(values.astype(np.float64))
    centroids = np.linspace(x[0], x[-1], k)
    prefix = np.concatenate([[0.0], np.cumsum(x)])
    for _ in range(iterations):
        edges = np.searchsorted(x, (centroids[1:] + centroids[:-1]) / 2)  # cluster j = x[lo_j:hi_j]
        lo, hi = np.concatenate([[0], edges]), np.concatenate([edges, [x.size]])
        filled = hi > lo
        new = centroids.copy()
        new[filled] = (prefix[hi[filled]] - prefix[lo[filled]]) / (hi[filled] - lo[filled])
        if np.array_equal(new, centroids):
            break
        centroids = new
    return np.sort(centroids)


def nearest(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of the sorted `table` for each value."""
    if len(table) == 1:
        return np.zeros(values.shape, dtype=np.int64)
    right = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
    left = right - 1
    return np.where(np.abs(values - table[left]) <= np.abs(values - table[right]), left, right)


class KMeans(Quantizer):
    name = "kmeans"
    description = "one k-means codebook of 2^bits values per layer (weight sharing)"

    def encode(self, weight: np.ndarray, mask: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
        kept = weight.reshape(-1)[mask]
        if kept.size == 0:
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.float16)
        table = np.unique(nonzero_never_zero(kmeans_1d(kept, 2 ** bits)))  # sorted, as stored
        codes = nearest(kept, table.astype(np.float32))
        # A value no weight is nearest to is not stored, so quantizing the decoded model again
        # finds the same table: the file of a measured point is the file of its rebuilt network.
        used = np.unique(codes)
        return np.searchsorted(used, codes).astype(np.uint8), table[used]

    def values(self, codes: torch.Tensor, table: torch.Tensor, rows: torch.Tensor, bits: int) -> torch.Tensor:
        return table[codes]


QUANTIZERS.register(KMeans())
