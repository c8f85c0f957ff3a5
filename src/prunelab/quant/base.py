"""Weight quantization of a pruned network: one contract for every scheme, each declared in its own
file of `prunelab.quant.schemes`.

A scheme turns the nonzero weights of one conv/linear tensor into `bits`-bit codes and a small
float16 table (a codebook, or one scale per output channel). Pruned weights are not coded at all:
they stay exactly zero, and no kept weight ever decodes to zero, so the sparsity of a quantized
model is the sparsity of the model it came from. What the file stores and what the sweep measures
are the same `Quantized.dequantize()`: the two agree bit for bit by construction.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import PrunelabError
from ..registry import Registry

BITS_RANGE = (2, 8)  # what every scheme supports: codes are stored one per byte before compression


@dataclass(frozen=True)
class Quantized:
    """One tensor's quantized nonzeros.

    Attributes:
        shape: the tensor's shape.
        mask: bool (n,), True where the weight is kept (flattened, row-major).
        codes: uint8 (nonzeros,), the code of each kept weight in mask order.
        table: float16, the scheme's table (codebook (K,), or scales (C_out,)).
        scheme: the name of the scheme whose `values` decodes the codes.
        bits: bits per code.
    """

    shape: tuple[int, ...]
    mask: np.ndarray
    codes: np.ndarray
    table: np.ndarray
    scheme: str
    bits: int

    @property
    def rows(self) -> np.ndarray:
        """The output channel (first axis) of each kept weight, in mask order."""
        return np.flatnonzero(self.mask) // (self.mask.size // self.shape[0])

    def dequantize(self) -> np.ndarray:
        """The float32 tensor the codes stand for: zeros where pruned."""
        values = QUANTIZERS.get(self.scheme).values(torch.from_numpy(self.codes.astype(np.int64)),
                                                    torch.from_numpy(self.table.astype(np.float32)),
                                                    torch.from_numpy(self.rows), self.bits)
        out = np.zeros(self.mask.size, dtype=np.float32)
        out[self.mask] = values.numpy()
        return out.reshape(self.shape)


class Quantizer(ABC):
    """How the kept weights of one tensor become codes.

    Attributes:
        name: the scheme's name in method specs ('kmeans' in 'global@kmeans4').
        description: one line for listings.
    """

    name: str
    description: str

    @abstractmethod
    def encode(self, weight: np.ndarray, mask: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes uint8 of the kept weights, float16 table) for `weight` (float32, its own shape)
        and its `mask` (bool, flattened)."""

    @abstractmethod
    def values(self, codes: torch.Tensor, table: torch.Tensor, rows: torch.Tensor, bits: int) -> torch.Tensor:
        """float32 values of the kept weights from their codes (int64), the float32 table and
        each weight's output channel (int64): the one decoding, differentiable in `table` (what
        quantization-aware fine-tuning trains). None of them is zero."""

    def quantize(self, weight: np.ndarray, bits: int) -> Quantized:
        """Quantize one tensor's nonzeros."""
        weight = np.asarray(weight, dtype=np.float32)
        mask = weight.reshape(-1) != 0
        codes, table = self.encode(weight, mask, bits)
        return Quantized(tuple(weight.shape), mask, codes.astype(np.uint8), table.astype(np.float16),
                         self.name, bits)


QUANTIZERS: Registry[Quantizer] = Registry("quantizer", "prunelab.quant.schemes")


TUNE = "ft"  # 'kmeans4+ft': the quantized network's tables fine-tuned with the codes held
RECALIBRATE = "bn"  # 'kmeans4+bn': its batch-norm statistics re-estimated (no weight changes)


@dataclass(frozen=True)
class QuantSpec:
    """A scheme, a bit width, and what recovers the quantized network (nothing, fine-tuning of
    the tables, or batch-norm re-estimation); parsed once from text like 'kmeans4', 'uniform8',
    'kmeans3+ft' or 'kmeans3+bn'."""

    quantizer: Quantizer
    bits: int
    tuned: bool = False
    recalibrated: bool = False

    @property
    def text(self) -> str:
        after = f"+{TUNE}" if self.tuned else f"+{RECALIBRATE}" if self.recalibrated else ""
        return f"{self.quantizer.name}{self.bits}{after}"

    @property
    def recovers(self) -> bool:
        """Its network is not the base's quantized alone: it needs training data, and is kept."""
        return self.tuned or self.recalibrated

    @classmethod
    def parse(cls, text: str) -> QuantSpec:
        head, plus, recovery = text.partition("+")
        match = re.fullmatch(r"([a-z][a-z_-]*?)(\d+)", head)
        if not match:
            raise PrunelabError(f"quantization '{text}' is not <scheme><bits>[+ft|+bn], e.g. kmeans4, "
                                f"uniform8 or kmeans3+ft (schemes: {', '.join(QUANTIZERS.names())})")
        if plus and recovery not in (TUNE, RECALIBRATE):
            raise PrunelabError(f"quantization '{text}': after the bits only '+{TUNE}' (fine-tune the "
                                f"codebooks or scales, codes held) or '+{RECALIBRATE}' (re-estimate batch "
                                f"norm) may follow, not '+{recovery}'")
        return cls(QUANTIZERS.get(match[1]), check_bits(int(match[2]), f"in '{text}'"),
                   tuned=recovery == TUNE, recalibrated=recovery == RECALIBRATE)


def check_bits(bits, where: str = "") -> int:
    """`bits` as an int in BITS_RANGE, or a one-line error."""
    low, high = BITS_RANGE
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not low <= bits <= high:
        raise PrunelabError(f"bits {bits!r} {where} are not supported: every scheme stores {low} to {high} "
                            f"bits per weight".replace("  ", " "))
    return int(bits)


def nonzero_never_zero(values: np.ndarray) -> np.ndarray:
    """Move any value that is exactly 0 to the smallest positive float16: a kept weight must
    never decode to a pruned one."""
    values = values.astype(np.float16)
    values[values == 0] = np.float16(6e-8)
    return values
