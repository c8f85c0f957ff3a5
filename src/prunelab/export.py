"""Export pruned models so the savings are real: a compact sparse file, safetensors + spec, and ONNX."""

from __future__ import annotations

import json
import lzma
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import PrunelabError
from .models import ModelInfo, create_model
from .pruning.spec import architecture_spec, build_from_spec

SPARSE_MAGIC = b"PRUNELAB-SPARSE\x00"  # 16 bytes, then a little-endian u32 header length
SPARSE_FORMAT = "prunelab-sparse/1"
FORMATS = ("sparse", "sparse-fp16", "structured", "onnx")
FP16_TOLERANCE = 5e-2  # max |logit difference| accepted for fp16 values (checked in the tests)


@dataclass(frozen=True)
class ModelRef:
    """What a loader needs to rebuild a registry model, and what the user needs to feed it.

    Attributes:
        name: registry name.
        num_classes, in_channels: classifier outputs and image channels.
        mean, std: input normalisation, per channel.
        classes: class names, if known.
    """

    name: str
    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] | None = None

    @classmethod
    def of(cls, meta) -> ModelRef:
        """The reference of a checkpoint's metadata (`CheckpointMeta`)."""
        return cls(meta.model, meta.num_classes, meta.in_channels, meta.mean, meta.std, meta.classes)

    def to_json(self) -> dict:
        return {"model": self.name, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "mean": list(self.mean), "std": list(self.std),
                "classes": list(self.classes) if self.classes is not None else None}

    @classmethod
    def from_json(cls, raw: dict) -> ModelRef:
        classes = raw.get("classes")
        return cls(raw["model"], int(raw["num_classes"]), int(raw["in_channels"]), tuple(raw["mean"]),
                   tuple(raw["std"]), tuple(classes) if classes is not None else None)


# ---------------------------------------------------------------- the compact sparse file


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


def save_sparse(path: str | os.PathLike, model: nn.Module, ref: ModelRef, fp16: bool = False) -> int:
    """Write `model` as a compact sparse file; returns its size in bytes.

    Layout: magic, u32 header length, JSON header, then two compressed streams. Every conv and
    linear weight is a bitmask of its nonzeros (np.packbits, all layers concatenated, LZMA) plus
    those nonzero values; the values and every other tensor (batch norm, biases, buffers) go
    byte-shuffled into one zlib stream. fp32 values round-trip bit-exactly; `fp16` stores every
    floating tensor as float16 (loaded back as float32).

    Args:
        path: file to write.
        model: a registry model with masked (zeroed) weights, registry shapes.
        ref: what rebuilds it (registry name, classes, normalisation).
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
    header = {"format": SPARSE_FORMAT, **ref.to_json(), "values": "float16" if fp16 else "float32",
              "tensors": entries, "dtype_order": list(by_dtype),
              "streams": {"mask_lzma": len(mask_stream), "values_zlib_shuffled": len(value_stream)}}
    head = json.dumps(header, separators=(",", ":")).encode()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(SPARSE_MAGIC + struct.pack("<I", len(head)) + head + mask_stream + value_stream)
    os.replace(tmp, path)
    return path.stat().st_size


def _read_sparse(path: Path) -> tuple[dict, bytes, bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PrunelabError(f"cannot read {path}: {exc}") from None
    if not data.startswith(SPARSE_MAGIC):
        raise PrunelabError(f"{path} is not a prunelab sparse file (wrong magic bytes)")
    try:
        (n,) = struct.unpack_from("<I", data, len(SPARSE_MAGIC))
        start = len(SPARSE_MAGIC) + 4
        header = json.loads(data[start:start + n])
        streams = header["streams"]
        body = start + n
        mask_end = body + streams["mask_lzma"]
        return header, lzma.decompress(data[body:mask_end]), zlib.decompress(data[mask_end:])
    except (struct.error, ValueError, KeyError, lzma.LZMAError, zlib.error) as exc:
        raise PrunelabError(f"{path} is a damaged prunelab sparse file ({exc})") from None


def load_sparse(path: str | os.PathLike) -> tuple[nn.Module, ModelRef]:
    """Rebuild the model of a sparse file (float32 weights, zeros scattered back), eval mode."""
    path = Path(path)
    header, bits, value_bytes = _read_sparse(path)
    ref = ModelRef.from_json(header)
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
    model = create_model(ref.name, ref.num_classes, ref.in_channels)
    model.load_state_dict(state)
    return model.eval(), ref


def entropy_bits(p: float) -> float:
    """Binary entropy H(p), bits."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@dataclass(frozen=True)
class Floor:
    """Information floor of a masked model's weights, bytes (theory).

    Attributes:
        global_: nonzeros x value bits + n x H(density) for the mask (one density for all masked
            weights), + every other tensor at value bits: the issue's floor.
        per_layer: the same with each layer's own density (a tighter floor for layer-varying
            masks, sum n_l H(p_l) <= n H(p)).
    """

    global_: float
    per_layer: float


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


# ---------------------------------------------------------------- structured: safetensors + spec


def save_structured(path: str | os.PathLike, model: nn.Module, info: ModelInfo, ref: ModelRef) -> int:
    """Write a channel-pruned model as one safetensors file whose header carries the architecture
    spec (channel counts) and the model reference as JSON: no pickled modules. Returns bytes."""
    spec = architecture_spec(model, info)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    meta = {"prunelab_spec": json.dumps(spec), "prunelab_model": json.dumps(ref.to_json())}
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path.stat().st_size


def load_structured(path: str | os.PathLike) -> tuple[nn.Module, ModelRef]:
    """Rebuild a channel-pruned model from `save_structured`'s file, eval mode."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise PrunelabError(f"cannot read {path} as safetensors: {exc}") from None
    if "prunelab_spec" not in meta:
        raise PrunelabError(f"{path} has no prunelab architecture spec in its header; "
                            f"it was not written by 'prunelab export --format structured'")
    model = build_from_spec(json.loads(meta["prunelab_spec"]))
    model.load_state_dict(state)
    return model.eval(), ModelRef.from_json(json.loads(meta["prunelab_model"]))


# ---------------------------------------------------------------- ONNX


def save_onnx(path: str | os.PathLike, model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Export to ONNX (opset 17, dynamic batch; input 'input', output 'logits'); returns bytes.

    Uses the TorchScript exporter (`dynamo=False`): the dynamo one needs onnxscript. Zeros of an
    unstructured mask stay in the dense ONNX tensors: the file is as large as the dense model's.
    """
    path = Path(path)
    model = model.eval()
    x = torch.zeros((1, *input_shape), device=next(model.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path.stat().st_size


def onnx_max_diff(path: str | os.PathLike, model: nn.Module, x: torch.Tensor) -> float:
    """Max |onnxruntime logits - PyTorch logits| on `x` (N, C, H, W), float32, CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.detach().cpu().float().numpy()})[0]
    with torch.inference_mode():
        want = model.eval().cpu()(x.cpu().float()).numpy()
    return float(np.abs(got - want).max())


# ---------------------------------------------------------------- one call: write, reload, check


@dataclass(frozen=True)
class Exported:
    """What `export_model` wrote and how well the file reproduces the model.

    Attributes:
        path: the file.
        format: one of FORMATS.
        bytes: its size on disk, measured.
        max_abs_diff: max |logits of the reloaded file - logits of the model| on random inputs
            (onnxruntime for ONNX); 0.0 means bit-exact.
        floor: the information floor of the weights (sparse formats only), bytes.
    """

    path: Path
    format: str
    bytes: int
    max_abs_diff: float
    floor: Floor | None


def check_format(fmt: str, channels: bool) -> str:
    """Validate an export format for a model pruned by a channel method (`channels`) or not."""
    if fmt not in FORMATS:
        from .errors import unknown

        raise unknown("format", fmt, FORMATS)
    if channels and fmt.startswith("sparse"):
        raise PrunelabError(f"format '{fmt}' stores masks, but a channel method's model has its channels "
                            f"removed (nothing to mask); use --format structured or onnx")
    if not channels and fmt == "structured":
        raise PrunelabError("format 'structured' is for channel methods (channels-layerwise, "
                            "channels-global); use --format sparse, sparse-fp16 or onnx")
    return fmt


def export_model(model: nn.Module, info: ModelInfo, ref: ModelRef, fmt: str, out: str | os.PathLike,
                 input_shape: tuple[int, ...], channels: bool = False, n_check: int = 8) -> Exported:
    """Write `model` in `fmt`, reload it the way a user would, and compare outputs.

    Args:
        model: the pruned model (masked registry shapes, or channel-pruned when `channels`).
        info, ref: registry metadata and what rebuilds the model.
        fmt: "sparse" / "sparse-fp16" (masked models), "structured" (channel methods) or "onnx".
        out: file to write.
        input_shape: (C, H, W) of one image.
        channels: the model was channel-pruned.
        n_check: random images for the output comparison.
    """
    check_format(fmt, channels)
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise PrunelabError(f"cannot write {out}: folder {out.parent} does not exist")
    model = model.eval().cpu()
    x = torch.randn((n_check, *input_shape), generator=torch.Generator().manual_seed(0))
    floor = None
    try:
        if fmt == "onnx":
            size = save_onnx(out, model, input_shape)
            return Exported(out, fmt, size, onnx_max_diff(out, model, x), None)
        if fmt == "structured":
            size = save_structured(out, model, info, ref)
            back, _ = load_structured(out)
        else:
            size = save_sparse(out, model, ref, fp16=fmt == "sparse-fp16")
            back, _ = load_sparse(out)
            floor = size_floor(model, 16 if fmt == "sparse-fp16" else 32)
    except OSError as exc:
        raise PrunelabError(f"cannot write {out}: {exc}") from None
    with torch.inference_mode():
        diff = float((back(x) - model(x)).abs().max())
    return Exported(out, fmt, size, diff, floor)
