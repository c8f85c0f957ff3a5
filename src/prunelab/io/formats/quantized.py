"""The pruned and quantized file: per conv/linear weight a mask of its nonzeros, their codes and
the scheme's float16 table (codebook or scales), every batch norm folded to a float16 scale and
shift, every other tensor in float16; compressed. It reads back as exactly the network the sweep
measured for the point (`QuantizedModel`).

A conv's mask is stored in two levels: one bit per k x k kernel (does it keep any weight?), then
the k x k bits of the kernels that do. An unstructured mask costs about what a flat bitmask does;
a mask of whole kernels (`kernels-global`) costs one bit per kernel."""

from __future__ import annotations

import json
import lzma
import math
import os
import zlib
from pathlib import Path

import numpy as np
from torch import nn

from ...errors import PrunelabError
from ...models import ModelCard, create_model
from ...quant import QuantSpec, quantize_model
from ...quant.base import Quantized
from ...quant.model import QuantizedModel
from . import FORMATS, Floor, Format, _entropy
from ._framing import read_framed, write_framed
from .sparse import entropy_bits

QUANT_MAGIC = b"PRUNELAB-QUANT\x00\x00"  # 16 bytes, then a little-endian u32 header length
QUANT_FORMAT = "prunelab-quantized/3"  # /1 (never released) had a plain JSON header, /2 flat masks
_LZMA = {"preset": 9 | lzma.PRESET_EXTREME}
# /3's streams: raw LZMA2 (no container: 60 bytes less each), no literal context (codes and mask
# bytes gain nothing from the previous byte's high bits; measured 1-2% smaller than the default)
_STREAM = {"format": lzma.FORMAT_RAW, "filters": [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME,
                                                   "lc": 0, "lp": 0, "pb": 0}]}
STREAMS = {"prunelab-quantized/2": ("mask", "codes", "tables", "rest"),
           QUANT_FORMAT: ("kernels", "mask", "freqs", "codes", "tables", "rest")}
ENTROPY_CODED = "codes"  # in /3 an ANS stream of its own (`_entropy`), every other stream LZMA


def kernel_size(shape: tuple[int, ...]) -> int:
    """Weights per kernel of a tensor (k x k of a conv); 1 for linear and 1 x 1 layers."""
    return math.prod(shape[2:])


def _pack(q: QuantizedModel) -> tuple[list[dict], dict[str, bytes]]:
    """Header entries and the raw streams (each LZMA-compressed on write)."""
    entries, streams = [], {k: [] for k in STREAMS[QUANT_FORMAT]}
    codes, freqs = [], []
    for name in q.order:
        if name in q.coded:
            c = q.coded[name]
            entry = {"name": name, "shape": list(c.shape), "coded": True, "nonzero": int(c.codes.size),
                     "table": int(c.table.size)}
            mask = c.mask
            if kernel_size(c.shape) > 1:
                per_kernel = mask.reshape(-1, kernel_size(c.shape))
                alive = per_kernel.any(axis=1)
                streams["kernels"].append(np.packbits(alive).tobytes())
                entry["kernels"], mask = int(alive.sum()), per_kernel[alive].reshape(-1)
            entries.append(entry)
            streams["mask"].append(np.packbits(mask).tobytes())  # each tensor's bits start on a byte
            codes.append(c.codes)
            freqs.append(_entropy.frequencies(c.codes, c.bits))
            streams["freqs"].append(freqs[-1].tobytes())
            streams["tables"].append(c.table.astype("<f2").tobytes())
        else:
            a = q.rest[name]
            entries.append({"name": name, "shape": list(a.shape), "dtype": a.dtype.name})
            streams["rest"].append(a.astype(a.dtype.newbyteorder("<")).tobytes())
    streams[ENTROPY_CODED] = [_entropy.encode(codes, freqs)]
    return entries, {k: b"".join(v) for k, v in streams.items()}


def save_quantized(path: str | os.PathLike, model: nn.Module, card: ModelCard, spec: QuantSpec) -> int:
    """Quantize `model` by `spec` and write it; returns the file's bytes.

    Layout: magic, u32 header length, the LZMA-compressed JSON header (card, scheme, bits,
    tensors, stream lengths: 23 kB of names and shapes for a ResNet-56 as plain JSON, 2 kB
    compressed; a CRC-32 of the body), then the streams of kernel masks, masks, code
    frequencies, codes (ANS), tables and the other tensors, in that order (LZMA but the codes).
    Registry shapes only (masked models): channel-pruned networks are not quantized.
    """
    entries, raw = _pack(quantize_model(model, spec, fold=True))
    streams = {k: v if k == ENTROPY_CODED else lzma.compress(v, **_STREAM) for k, v in raw.items()}
    body = b"".join(streams[k] for k in STREAMS[QUANT_FORMAT])
    header = {"format": QUANT_FORMAT, **card.ref_json(), "scheme": spec.quantizer.name, "bits": spec.bits,
              "tensors": entries, "streams": {k: len(v) for k, v in streams.items()},
              "crc32": zlib.crc32(body)}
    head = lzma.compress(json.dumps(header, separators=(",", ":")).encode(), **_LZMA)
    return write_framed(path, QUANT_MAGIC, head, body)


def _read(path: Path) -> tuple[dict, dict[str, bytes]]:
    head, body = read_framed(path, QUANT_MAGIC, "quantized")
    try:
        header = json.loads(lzma.decompress(head))
        fmt = header.get("format") if isinstance(header, dict) else None
        if fmt not in STREAMS:
            raise PrunelabError(f"{path} is a prunelab quantized file of format {fmt!r}, "
                                f"which this version does not read (it reads {', '.join(STREAMS)})")
        offset, streams = 0, {}
        current = fmt == QUANT_FORMAT
        if current and zlib.crc32(body) != header["crc32"]:  # raw streams carry no check of their own
            raise ValueError("its checksum does not match")
        for k in STREAMS[fmt]:
            size, chunk = header["streams"][k], body[offset:offset + header["streams"][k]]
            if current and k == ENTROPY_CODED:
                streams[k] = chunk
            else:
                streams[k] = lzma.decompress(chunk, **(_STREAM if current else {}))
            offset += size
        return header, streams
    except (ValueError, KeyError, lzma.LZMAError) as exc:
        raise PrunelabError(f"{path} is a damaged prunelab quantized file ({exc})") from None


def read_quantized(path: str | os.PathLike) -> tuple[QuantizedModel, ModelCard]:
    """What a quantized file holds: its codes and tables, and its card."""
    path = Path(path)
    header, streams = _read(path)
    card = ModelCard.from_json(header, f"the header of {path}")
    spec = QuantSpec.parse(f"{header['scheme']}{header['bits']}")
    try:
        return _decode(header, streams, spec), card
    except (ValueError, KeyError, RuntimeError) as exc:  # lengths or codes that do not add up
        raise PrunelabError(f"{path} is a damaged prunelab quantized file ({exc})") from None


def _decode(header: dict, s: dict[str, bytes], spec: QuantSpec) -> QuantizedModel:
    """The tensors of the header, in order, read from the decompressed streams."""
    at = dict.fromkeys(s, 0)

    def take(stream: str, size: int) -> bytes:
        chunk = s[stream][at[stream]:at[stream] + size]
        if len(chunk) != size:
            raise ValueError(f"the {stream} stream ends early")
        at[stream] += size
        return chunk

    codes = iter(_read_codes(header, s, spec.bits))
    coded, rest, order = {}, {}, []
    for e in header["tensors"]:
        shape, n = tuple(e["shape"]), math.prod(e["shape"])
        order.append(e["name"])
        if e.get("coded"):
            mask = _read_mask(take, shape, e.get("kernels"))
            table = np.frombuffer(take("tables", 2 * e["table"]), dtype="<f2").astype(np.float16)
            coded[e["name"]] = Quantized(shape, mask, next(codes), table, spec.quantizer.name, spec.bits)
        else:
            dtype = np.dtype(e["dtype"]).newbyteorder("<")
            rest[e["name"]] = np.frombuffer(take("rest", n * dtype.itemsize), dtype=dtype).reshape(shape)
    return QuantizedModel(spec, coded, rest, order)


def _read_codes(header: dict, s: dict[str, bytes], bits: int) -> list[np.ndarray]:
    """Every coded tensor's codes, in order: one ANS stream under the stored frequencies (/3),
    or one byte per code (/2)."""
    sizes = [e["nonzero"] for e in header["tensors"] if e.get("coded")]
    if header["format"] != QUANT_FORMAT:
        ends = np.cumsum([0, *sizes])
        return [np.frombuffer(s["codes"][a:b], dtype=np.uint8) for a, b in zip(ends, ends[1:], strict=False)]
    freqs = np.frombuffer(s["freqs"], dtype=np.uint8)
    if freqs.size != len(sizes) * 2 ** bits:
        raise ValueError("the code frequencies do not match the header")
    return _entropy.decode(s[ENTROPY_CODED], sizes, list(freqs.reshape(len(sizes), 2 ** bits)))


def _read_mask(take, shape: tuple[int, ...], kernels: int | None) -> np.ndarray:
    """One tensor's flat mask: its bits, or (`kernels` given) its kernels' bits and then the bits
    of the `kernels` kernels that keep any weight."""
    def bits(stream: str, count: int) -> np.ndarray:
        packed = np.frombuffer(take(stream, -(-count // 8)), dtype=np.uint8)
        return np.unpackbits(packed, count=count).astype(bool)

    n = math.prod(shape)
    if kernels is None:
        return bits("mask", n)
    k = kernel_size(shape)
    alive = bits("kernels", n // k)
    if int(alive.sum()) != kernels:
        raise ValueError("a kernel mask does not match its header")
    mask = np.zeros((n // k, k), dtype=bool)
    mask[alive] = bits("mask", kernels * k).reshape(kernels, k)
    return mask.reshape(-1)


def load_quantized(path: str | os.PathLike) -> tuple[nn.Module, ModelCard]:
    """The network a quantized file decodes to (float32 weights), eval mode."""
    q, card = read_quantized(path)
    model = create_model(card.model, card.num_classes, card.in_channels)
    model.load_state_dict(q.state_dict())
    return model.eval(), card


def mask_entropy(mask: np.ndarray, shape: tuple[int, ...]) -> float:
    """Bits a tensor's mask needs at least, as the file stores it: the entropy of its kernels'
    bits plus that of the bits inside the kept kernels, or of its bits alone where that is less
    (a flat bitmask; the only one for linear and 1 x 1 layers)."""
    flat = mask.size * entropy_bits(float(mask.mean()))
    k = kernel_size(shape)
    if k == 1:
        return flat
    alive = mask.reshape(-1, k).any(axis=1)
    inner = mask.reshape(-1, k)[alive]
    two = alive.size * entropy_bits(float(alive.mean())) + inner.size * entropy_bits(float(inner.mean()))
    return min(flat, two)


def code_entropy(codes: np.ndarray) -> float:
    """Bits the codes of one tensor need at least under one static model: n x H(code frequencies)."""
    counts = np.bincount(codes)
    p = counts[counts > 0] / max(codes.size, 1)
    return float(-(counts[counts > 0] * np.log2(p)).sum())


def quantized_floor(model: nn.Module, spec: QuantSpec) -> Floor:
    """Theory, with the tables and the other tensors at 16 bits (a folded batch norm's constant
    statistics at none). Global: nonzeros x bits + n x H(one density for all masked weights), the
    issue's floor. Per layer: each tensor's `code_entropy` + its `mask_entropy`, what the file's
    models can reach at best."""
    q = quantize_model(model, spec, fold=True)
    constant = {f"{p}.{k}" for p in q.folded for k in ("running_mean", "running_var")}
    n = nnz = 0
    layer_bits = extra = 0.0
    for c in q.coded.values():
        n, nnz = n + c.mask.size, nnz + int(c.mask.sum())
        layer_bits += mask_entropy(c.mask, c.shape) + code_entropy(c.codes)
        extra += 16 * c.table.size
    extra += sum(8 * a.nbytes for name, a in q.rest.items() if name not in constant)
    global_bits = nnz * spec.bits + n * entropy_bits(nnz / n if n else 0)
    return Floor((global_bits + extra) / 8, (layer_bits + extra) / 8)


class QuantizedFormat(Format):
    """The quantized file of one scheme and bit width: `get_format('quantized', channels, spec)`.
    Quantizing and folding are idempotent (a decoded model quantizes to the same values), so the
    model given may be the float one or the one the point measured: the file holds the same network."""

    name = "quantized"
    description = "bitmask + k-bit codes of the nonzeros + codebooks/scales, compressed (method@<quant>)"

    channels = False
    refusal = ("format 'quantized' holds masked networks of the registry's shapes; a channel method's "
               "network is not quantized (export it as onnx or structured)")

    def __init__(self, spec: QuantSpec | None = None):
        self.spec = spec

    def bound(self, quant: QuantSpec | None, channels: bool) -> Format:
        if quant is None:
            raise PrunelabError("format 'quantized' writes a method's quantized weights: name the "
                                "quantization in the method, e.g. --method global@kmeans4 or global@uniform8")
        return QuantizedFormat(quant)

    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        return save_quantized(path, model, card, self.spec)

    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        return load_quantized(path)

    def floor(self, model: nn.Module) -> Floor:
        return quantized_floor(model, self.spec)


FORMATS.register(QuantizedFormat())
