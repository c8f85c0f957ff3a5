"""ONNX (opset 17, dynamic batch), checked against PyTorch with onnxruntime. The file's metadata
holds the model card (input normalisation, classes), so `prunelab evaluate` can score it."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import PrunelabError
from ...models import ModelCard
from . import FORMATS, Format

CARD_KEY, FORMAT_KEY = "prunelab_model", "prunelab_format"  # the file's metadata_props


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


class OnnxNetwork(nn.Module):
    """An ONNX file run by onnxruntime (CPU) as a module of no parameters: logits of a batch, on
    the batch's device."""

    def __init__(self, path: Path):
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self.session.run(None, {"input": batch})[0]).to(x.device)


def onnx_max_diff(path: str | os.PathLike, model: nn.Module, x: torch.Tensor) -> float:
    """Max |onnxruntime logits - PyTorch logits| on `x` (N, C, H, W), float32, CPU."""
    x = x.detach().cpu().float()
    got = OnnxNetwork(Path(path))(x)
    with torch.inference_mode():
        want = model.eval().cpu()(x)
    return float((got - want).abs().max())


def stamp_card(path: Path, card: ModelCard, fmt: str) -> int:
    """Write `card` (what feeds the network) and the format's name into the ONNX file's metadata;
    returns its bytes."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in ((CARD_KEY, json.dumps(card.ref_json())), (FORMAT_KEY, fmt)):
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path.stat().st_size


def read_onnx(path: Path) -> tuple[OnnxNetwork, ModelCard, str]:
    """(network, card, format name) of an ONNX file `prunelab export` wrote; one written elsewhere,
    without a card in its metadata, is refused in one line."""
    try:
        network = OnnxNetwork(path)
    except Exception as exc:  # onnxruntime raises its own classes for a file it cannot parse
        first = (str(exc).splitlines() or [""])[0][:160]
        raise PrunelabError(f"{path} is not an ONNX file onnxruntime can load ({first})") from None
    meta = network.session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise PrunelabError(f"{path} is an ONNX file without prunelab's model card (its input "
                            f"normalisation and classes); score the checkpoint it came from, or export "
                            f"it again with prunelab export")
    try:
        card = ModelCard.from_json(json.loads(meta[CARD_KEY]), where=str(path))
    except json.JSONDecodeError:
        raise PrunelabError(f"{path}: its model card metadata is not JSON; export it again") from None
    return network, card, meta.get(FORMAT_KEY, "onnx")


class Onnx(Format):
    name = "onnx"
    description = "ONNX for onnxruntime and other runtimes (zeros of a mask stay as dense tensors)"

    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        save_onnx(path, model, input_shape)
        return stamp_card(path, card, self.name)

    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        network, card, _ = read_onnx(path)
        return network, card

    def reload_diff(self, path: Path, model: nn.Module, x: torch.Tensor) -> float:
        return onnx_max_diff(path, model, x)


FORMATS.register(Onnx())
