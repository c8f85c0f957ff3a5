"""int8 ONNX: the float ONNX quantized by onnxruntime's own static quantization (QDQ nodes,
per-channel int8 weights, uint8 activations calibrated on training images), the model a CPU
deployment ships. Lossy by design: export measures its top-1 beside the float network's.

The weights use 7 of their 8 bits (onnxruntime's `reduce_range`, its advice for x86): the uint8 x
int8 kernels of x86 CPUs without VNNI add pairs of products in 16 bits, which saturate on full-range
weights. Measured: a full-range dense ResNet-56 file scored 92.72% on a VNNI host and 92.33% on an
AVX2-only EPYC; one file must give one answer on every CPU it is shipped to."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
from torch import nn

from ...errors import PrunelabError
from ...models import ModelCard
from . import FORMATS, Format
from .onnx import OnnxNetwork, onnx_max_diff, read_onnx, save_onnx, stamp_card

CALIBRATION_BATCH = 64


class _Images:
    """onnxruntime's CalibrationDataReader over normalised images, in batches."""

    def __init__(self, images: torch.Tensor):
        self.batches = iter(images[i:i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH))

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"input": batch.detach().cpu().float().numpy()}


def save_onnx_int8(path: Path, model: nn.Module, input_shape: tuple[int, ...], images: torch.Tensor) -> int:
    """Export `model` to float ONNX, then quantize it statically with onnxruntime (QDQ, int8
    per-channel weights in 7 bits, uint8 activations from min/max over `images`); returns bytes."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        save_onnx(fp32, model, input_shape)
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its shape warnings
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(path), _Images(images), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8)
    return path.stat().st_size


def onnx_logits(path: str | Path, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """onnxruntime's logits of the ONNX file on `x` (N, C, H, W), CPU, float32."""
    network = OnnxNetwork(Path(path))
    return torch.cat([network(x[i:i + batch_size].cpu()) for i in range(0, len(x), batch_size)])


class OnnxInt8(Format):
    """`get_format('onnx-int8', ...)`, then `calibrated(images)` before writing."""

    name = "onnx-int8"
    description = "int8 ONNX (onnxruntime static quantization, QDQ), calibrated on training images"
    needs_images = True
    lossy = True

    def __init__(self, images: torch.Tensor | None = None):
        self.images = images

    def calibrated(self, images: torch.Tensor) -> Format:
        return OnnxInt8(images)

    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        if self.images is None:
            raise PrunelabError("format 'onnx-int8' needs calibration images (training images of the "
                                "run's data)")
        save_onnx_int8(path, model, input_shape, self.images)
        return stamp_card(path, card, self.name)

    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        network, card, _ = read_onnx(path)
        return network, card

    def reload_diff(self, path: Path, model: nn.Module, x: torch.Tensor) -> float:
        return onnx_max_diff(path, model, x)

    def logits(self, path: Path, x: torch.Tensor) -> torch.Tensor:
        return onnx_logits(path, x)


FORMATS.register(OnnxInt8())
