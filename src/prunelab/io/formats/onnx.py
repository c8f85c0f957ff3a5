"""ONNX (opset 17, dynamic batch), checked against PyTorch with onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...models import ModelCard
from . import FORMATS, Format


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


class Onnx(Format):
    name = "onnx"
    description = "ONNX for onnxruntime and other runtimes (zeros of a mask stay as dense tensors)"

    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        return save_onnx(path, model, input_shape)

    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        raise NotImplementedError("an ONNX file is read by onnxruntime, not rebuilt as a module")

    def reload_diff(self, path: Path, model: nn.Module, x: torch.Tensor) -> float:
        return onnx_max_diff(path, model, x)


FORMATS.register(Onnx())
