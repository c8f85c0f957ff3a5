"""The compact sparse file: a bitmask of every conv/linear weight's nonzeros plus those values,
compressed; fp32 round-trips bit-exactly, `sparse-fp16` halves the values."""

from __future__ import annotations

import json
import lzma
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import PrunelabError
from ...models import ModelCard, create_model
from . import FORMATS, Floor, Format
from ._framing import read_framed, write_framed

SPARSE_MAGIC = b"PRUNELAB-SPARSE\x00"  # 16 bytes, then a little-endian u32 header length
SPARSE_FORMAT = "prunelab-sparse/1"
FP16_TOLERANCE = 5e-2  # max |logit difference| accepted for fp16 values (checked in the tests)


def _masked_names(model: nn.Module) -> set[str]:
    """Tensors stored as bitmask + nonzero values: every conv and linear weight."""
    kinds = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
    return {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, kinds)}


def _shuffle(raw: np.ndarray) -> bytes:
    """Byte planes (all first bytes, then all second bytes, ...): sign/exponent bytes of float
    weights repeat far more than mantissa bytes, so a compressor finds them (as blosc does)."""
    return raw.view(np.uint8).reshape(-1, raw.itemsize).T.tobytes()


def _unshuffle(data: bytes, dtype: np.dtype) -> np.ndarray:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(dtype.itemsize, -1)
    return planes.T.copy().view(dtype).reshape(-1)


def save_sparse(path: str | os.PathLike, model: nn.Module, card: ModelCard, fp16: bool = False) -> int:
    """Write `model` as a compact sparse file; returns its size in bytes.

    Layout: magic, u32 header length, JSON header, then two compressed streams. Every conv and
    linear weight is a bitmask of its nonzeros (np.packbits, all layers concatenated, LZMA) plus
    those nonzero values; the values and every other tensor (batch norm, biases, buffers) go
    byte-shuffled into one zlib stream. fp32 values round-trip bit-exactly; `fp16` stores every
    floating tensor as float16 (loaded back as float32).

    Args:
        path: file to write.
        model: a registry model with masked (zeroed) weights, registry shapes.
        card: what rebuilds it (registry name, classes, normalisation).
        fp16: store values as float16.
    """
    masked = _masked_names(model)
    value_dtype = np.float16 if fp16 else np.float32
    entries, bits, values = [], [], []
    for name, t in model.state_dict().items():
        a = t.detach().cpu().numpy()
        if a.dtype.kind == "f":
            a = a.astype(value_dtype)
        entry = {"name": name, "shape": list(a.shape), "dtype": a.dtype.name}
        if name in masked:
            keep = a.reshape(-1) != 0
            bits.append(np.packbits(keep))
            a = a.reshape(-1)[keep]
            entry["nonzero"] = int(keep.sum())
        entries.append(entry)
        values.append(a.reshape(-1))
    by_dtype: dict[str, list[np.ndarray]] = {}
    for entry, a in zip(entries, values, strict=True):
        by_dtype.setdefault(entry["dtype"], []).append(a)
    mask_stream = lzma.compress(np.concatenate(bits).tobytes() if bits else b"", preset=6)
    value_stream = zlib.compress(b"".join(_shuffle(np.concatenate(v)) for v in by_dtype.values()), 6)
    header = {"format": SPARSE_FORMAT, **card.ref_json(), "values": "float16" if fp16 else "float32",
              "tensors": entries, "dtype_order": list(by_dtype),
              "streams": {"mask_lzma": len(mask_stream), "values_zlib_shuffled": len(value_stream)}}
    head = json.dumps(header, separators=(",", ":")).encode()
    return write_framed(path, SPARSE_MAGIC, head, mask_stream + value_stream)


def _read_sparse(path: Path) -> tuple[dict, bytes, bytes]:
    head, body = read_framed(path, SPARSE_MAGIC, "sparse")
    try:
        header = json.loads(head)
        mask_end = header["streams"]["mask_lzma"]
        return header, lzma.decompress(body[:mask_end]), zlib.decompress(body[mask_end:])
    except (ValueError, KeyError, lzma.LZMAError, zlib.error) as exc:
        raise PrunelabError(f"{path} is a damaged prunelab sparse file ({exc})") from None


def load_sparse(path: str | os.PathLike) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model of a sparse file (float32 weights, zeros scattered back), eval mode."""
    path = Path(path)
    header, bits, value_bytes = _read_sparse(path)
    card = ModelCard.from_json(header, f"the header of {path}")
    pools, offset = {}, 0
    counts: dict[str, int] = {}
    for e in header["tensors"]:
        counts[e["dtype"]] = counts.get(e["dtype"], 0) + e.get("nonzero", math.prod(e["shape"]))
    for name in header["dtype_order"]:
        dtype = np.dtype(name)
        size = counts[name] * dtype.itemsize
        pools[name] = _unshuffle(value_bytes[offset:offset + size], dtype)
        offset += size
    mask_bits = np.unpackbits(np.frombuffer(bits, dtype=np.uint8))
    cursor = dict.fromkeys(pools, 0)
    bit = 0
    state = {}
    for e in header["tensors"]:
        n = math.prod(e["shape"])
        take = e.get("nonzero", n)
        vals = pools[e["dtype"]][cursor[e["dtype"]]:cursor[e["dtype"]] + take]
        cursor[e["dtype"]] += take
        if "nonzero" in e:
            keep = mask_bits[bit:bit + n].astype(bool)
            bit += -(-n // 8) * 8  # each tensor's bits start on a byte
            full = np.zeros(n, dtype=vals.dtype)
            full[keep] = vals
            vals = full
        t = torch.from_numpy(vals.reshape(e["shape"]).copy())
        state[e["name"]] = t.float() if t.is_floating_point() else t
    model = create_model(card.model, card.num_classes, card.in_channels)
    model.load_state_dict(state)
    return model.eval(), card


def entropy_bits(p: float) -> float:
    """Binary entropy H(p), bits."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def size_floor(model: nn.Module, value_bits: int = 32) -> Floor:
    """The floor that any encoding of `model`'s conv/linear masks and values must pay."""
    masked = _masked_names(model)
    n = nnz = rest = 0
    layer_bits = 0.0
    for name, t in model.state_dict().items():
        if name in masked:
            k = int((t != 0).sum())
            n, nnz = n + t.numel(), nnz + k
            layer_bits += t.numel() * entropy_bits(k / t.numel())
        elif t.is_floating_point():
            rest += t.numel() * value_bits
        else:
            rest += t.numel() * t.element_size() * 8
    values = nnz * value_bits + rest
    return Floor((values + n * entropy_bits(nnz / n if n else 0)) / 8, (values + layer_bits) / 8)


class Sparse(Format):
    channels = False
    refusal = ""

    def __init__(self, fp16: bool):
        self.fp16 = self.lossy = fp16
        self.name = "sparse-fp16" if fp16 else "sparse"
        self.description = ("bitmask + nonzero values, compressed; " +
                            ("float16 values (half the bytes)" if fp16 else "float32, bit-exact"))
        self.refusal = (f"format '{self.name}' stores masks, but a channel method's model has its channels "
                        f"removed (nothing to mask); use --format structured or onnx")

    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        return save_sparse(path, model, card, fp16=self.fp16)

    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        return load_sparse(path)

    def floor(self, model: nn.Module) -> Floor:
        return size_floor(model, 16 if self.fp16 else 32)


FORMATS.register(Sparse(fp16=False))
FORMATS.register(Sparse(fp16=True))
