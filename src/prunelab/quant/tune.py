"""Quantization-aware fine-tuning with the codes held (Deep Compression's centroid fine-tuning):
every coded weight is its table entry, so a table entry's gradient is the sum of its weights'
gradients; the codes, and with them the mask, never change, and the tables and every other
parameter (batch norm, biases) train by the recovery's own retraining."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .base import QUANTIZERS, Quantized, nonzero_never_zero
from .model import QuantizedModel


class Coded(nn.Module):
    """A weight made from held codes and a trainable table (a parametrization of the weight)."""

    def __init__(self, q: Quantized):
        super().__init__()
        self.scheme, self.bits, self.shape = q.scheme, q.bits, q.shape
        self.register_buffer("index", torch.from_numpy(np.flatnonzero(q.mask)))
        self.register_buffer("codes", torch.from_numpy(q.codes.astype(np.int64)))
        self.register_buffer("rows", torch.from_numpy(q.rows))
        self.table = nn.Parameter(torch.from_numpy(q.table.astype(np.float32)))

    def forward(self, _unused: torch.Tensor) -> torch.Tensor:
        values = QUANTIZERS.get(self.scheme).values(self.codes, self.table, self.rows, self.bits)
        flat = torch.zeros(int(np.prod(self.shape)), dtype=values.dtype, device=values.device)
        return flat.index_copy(0, self.index, values).view(self.shape)


def hold_codes(model: nn.Module, q: QuantizedModel) -> None:
    """Make every coded weight of `model` its `Coded` parametrization, other tensors as `q` decodes
    them (float16-rounded): the model then computes exactly the quantized network."""
    model.load_state_dict(q.state_dict())
    modules = dict(model.named_modules())
    for name, c in q.coded.items():
        parametrize.register_parametrization(modules[name.removesuffix(".weight")], "weight", Coded(c),
                                             unsafe=True)


@torch.no_grad()
def release_codes(model: nn.Module) -> None:
    """Back to plain weights: each table rounded to float16 as the file stores it (no entry zero)."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight"):
            coded = module.parametrizations.weight[0]
            table = nonzero_never_zero(coded.table.detach().cpu().numpy())
            coded.table.copy_(torch.from_numpy(table.astype(np.float32)))
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            # Removal registers the weight again after the bias; conv and linear layers hold it
            # first, and the state dict's order is the file's, so put it back.
            module._parameters = {"weight": module._parameters.pop("weight"), **module._parameters}
