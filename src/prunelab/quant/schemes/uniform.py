"""Per-output-channel uniform quantization of the kept weights (int8 and lower).

Mid-rise levels (q + 1/2) * scale for q in [-2^(b-1), 2^(b-1)): symmetric, 2^b of them, none at
zero (zero means pruned), the outermost at the row's largest |weight| exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from ..base import QUANTIZERS, Quantizer, nonzero_never_zero


class Uniform(Quantizer):
    name = "uniform"
    description = "per-output-channel uniform levels, scale = max |w| of the row"

    def encode(self, weight: np.ndarray, mask: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
        half = 2 ** (bits - 1)
        rows = weight.reshape(weight.shape[0], -1)
        scale = nonzero_never_zero(np.abs(rows).max(axis=1) / (half - 0.5))
        step = np.repeat(scale.astype(np.float32), rows.shape[1])[mask]
        codes = np.clip(np.floor(weight.reshape(-1)[mask] / step), -half, half - 1) + half
        return codes.astype(np.uint8), scale

    def values(self, codes: torch.Tensor, table: torch.Tensor, rows: torch.Tensor, bits: int) -> torch.Tensor:
        return (codes.to(table.dtype) - (2 ** (bits - 1) - 0.5)) * table[rows]


QUANTIZERS.register(Uniform())
