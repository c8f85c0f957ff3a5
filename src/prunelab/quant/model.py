"""A whole model quantized: every conv/linear weight's nonzeros as codes (`Quantized`), every other
floating tensor (batch norm, biases) as float16. `QuantizedModel.state_dict()` is the network the
file holds, used both to measure a quantized point and to load its file."""

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
    """

    spec: QuantSpec
    coded: dict[str, Quantized]
    rest: dict[str, np.ndarray]
    order: list[str]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The decoded tensors, float32 where floating."""
        state = {}
        for name in self.order:
            a = self.coded[name].dequantize() if name in self.coded else self.rest[name]
            t = torch.from_numpy(np.array(a))  # a copy, C order, 0-d kept 0-d
            state[name] = t.float() if t.is_floating_point() else t
        return state


def quantize_model(model: nn.Module, spec: QuantSpec) -> QuantizedModel:
    """Quantize `model`'s conv/linear weights by `spec`, the rest to float16."""
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
    return QuantizedModel(spec, coded, rest, order)


def dequantized(model: nn.Module, spec: QuantSpec) -> nn.Module:
    """`model` with its weights replaced by what `spec` makes of them (in place; returned)."""
    model.load_state_dict(quantize_model(model, spec).state_dict())
    return model
