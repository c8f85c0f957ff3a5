"""A whole model quantized: every conv/linear weight's nonzeros as codes (`Quantized`), every other
floating tensor (batch norm, biases) as float16, and for the file each batch norm folded to a scale
and a shift. `QuantizedModel.state_dict()` is the network it holds, used both to measure a
quantized point and to load its file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import PrunelabError
from .base import Quantized, QuantSpec


def quantized_names(model: nn.Module) -> set[str]:
    """The tensors coded by a scheme: every conv and linear weight (as the sparse format masks)."""
    kinds = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
    return {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, kinds)}


@dataclass(frozen=True)
class QuantizedModel:
    """What a quantized file holds.

    Attributes:
        spec: scheme and bits.
        coded: tensor name -> its quantized nonzeros.
        rest: tensor name -> every other tensor, floating ones as float16, in state-dict order
            together with `coded` (`order`).
        order: the state dict's names, in order.
        folded: the batch norms whose statistics were folded into their scale and shift (their
            running mean and variance are then the constants 0 and 1, and carry nothing).
    """

    spec: QuantSpec
    coded: dict[str, Quantized]
    rest: dict[str, np.ndarray]
    order: list[str]
    folded: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The decoded tensors, float32 where floating."""
        state = {}
        for name in self.order:
            a = self.coded[name].dequantize() if name in self.coded else self.rest[name]
            t = torch.from_numpy(np.array(a))  # a copy, C order, 0-d kept 0-d
            state[name] = t.float() if t.is_floating_point() else t
        return state


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _fold(rest: dict[str, np.ndarray], prefix: str, eps: float) -> None:
    """Fold one batch norm's float16 statistics into its scale and shift, in place: in eval mode
    the network computes the same function up to float16 rounding, with mean 0 and variance 1.
    Folding a folded batch norm changes nothing (a decoded model quantizes to the same values)."""
    g, b, m, v = (rest[f"{prefix}.{k}"].astype(np.float64) for k in ("weight", "bias", "running_mean",
                                                                       "running_var"))
    inv = 1.0 / np.sqrt(v + eps)
    rest[f"{prefix}.weight"] = (g * (np.sqrt(1.0 + eps) * inv)).astype(np.float16)
    rest[f"{prefix}.bias"] = (b - m * g * inv).astype(np.float16)
    rest[f"{prefix}.running_mean"] = np.zeros_like(m, dtype=np.float16)
    rest[f"{prefix}.running_var"] = np.ones_like(v, dtype=np.float16)


def quantize_model(model: nn.Module, spec: QuantSpec, fold: bool = False) -> QuantizedModel:
    """Quantize `model`'s conv/linear weights by `spec`, the rest to float16; with `fold`, every
    batch norm with an affine scale and running statistics folded as the file stores it (only for
    a network that is final: in training mode a folded batch norm is another function)."""
    names = quantized_names(model)
    coded, rest, order = {}, {}, []
    for name, t in model.state_dict().items():
        a = t.detach().cpu().numpy()
        order.append(name)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise PrunelabError(f"tensor {name} holds NaN or inf values: a model with them cannot be "
                                f"quantized (nor measured); check the checkpoint")
        if name in names:
            coded[name] = spec.quantizer.quantize(a, spec.bits)
        else:
            rest[name] = a.astype(np.float16) if a.dtype.kind == "f" else a
    norms = {n: m for n, m in model.named_modules()
             if isinstance(m, BATCH_NORMS) and m.affine and m.running_var is not None} if fold else {}
    for prefix, norm in norms.items():
        _fold(rest, prefix, norm.eps)
    return QuantizedModel(spec, coded, rest, order, tuple(norms))


def dequantized(model: nn.Module, spec: QuantSpec, fold: bool = False) -> nn.Module:
    """`model` with its weights replaced by what `spec` makes of them (in place; returned); with
    `fold`, the network its file holds (batch norms folded)."""
    model.load_state_dict(quantize_model(model, spec, fold).state_dict())
    return model
