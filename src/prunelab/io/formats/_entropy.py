"""Entropy coding of the quantized file's codes (Deep Compression's last stage, with an ANS coder
from `constriction` instead of Huffman tables): each tensor's codes under its own static model,
the symbol frequencies quantized to one byte each and stored beside them."""

from __future__ import annotations

import constriction
import numpy as np

FREQ_MAX = 255  # one byte per symbol and tensor


def frequencies(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 (2**bits,) frequencies of `codes`, scaled to FREQ_MAX; every code that occurs gets at
    least 1, so the model never gives it zero probability."""
    counts = np.bincount(codes, minlength=2 ** bits).astype(np.float64)
    if counts.sum() == 0:
        return np.zeros(2 ** bits, dtype=np.uint8)
    scaled = np.round(FREQ_MAX * counts / counts.max())
    return np.where(counts > 0, np.maximum(scaled, 1), 0).astype(np.uint8)


def _model(freq: np.ndarray):
    """The one model both sides build from the stored frequencies (the same floats, bit for bit)."""
    p = freq.astype(np.float64)
    return constriction.stream.model.Categorical(p / p.sum(), perfect=False)


def encode(codes: list[np.ndarray], freqs: list[np.ndarray]) -> bytes:
    """One ANS stream holding every tensor's codes in order, each under the model of its `freqs`."""
    coder = constriction.stream.stack.AnsCoder()
    for c, f in reversed(list(zip(codes, freqs, strict=True))):  # a stack: the last in is read first
        if c.size:
            coder.encode_reverse(c.astype(np.int32), _model(f))
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, sizes: list[int], freqs: list[np.ndarray]) -> list[np.ndarray]:
    """The codes `encode` wrote: `sizes[i]` codes for the i-th tensor. Raises ValueError on data
    that is not such a stream."""
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if words.size == 0 and any(sizes):
        raise ValueError("the codes stream is empty")
    coder = constriction.stream.stack.AnsCoder(words)
    out = []
    for n, f in zip(sizes, freqs, strict=True):
        if n and not f.any():
            raise ValueError("a code frequency table is empty")
        out.append(coder.decode(_model(f), n).astype(np.uint8) if n else np.zeros(0, dtype=np.uint8))
    return out
