"""Multiply-accumulates of one forward pass, counted by torch.utils.flop_counter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Macs:
    """Multiply-accumulates of one forward pass of one image, counted by
    `torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2; convolutions and matrix
    products only: batch norm, activations, pooling and adds are not counted).

    Attributes:
        total: MACs of the model as it runs (dense kernels: zeros in weights are multiplied too).
        per_layer: module name -> MACs, for every conv and linear.
    """

    total: int
    per_layer: dict[str, int]

    def effective(self, density: dict[str, float]) -> float:
        """Theory, not a measurement: MACs if each layer skipped its zero weights, i.e. each
        layer's MACs scaled by the fraction of its weights that are nonzero (`density`, by
        module name; layers not listed stay dense). No dense kernel runs faster for it."""
        return self.total - sum(m * (1.0 - density.get(name, 1.0)) for name, m in self.per_layer.items())


@torch.no_grad()
def macs(model: nn.Module, input_shape: tuple[int, ...]) -> Macs:
    """Count the MACs of `model` on one input of `input_shape` (C, H, W), on the model's device."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros((1, *input_shape), device=device)
    kinds = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
    layers = {m: name for name, m in model.named_modules() if isinstance(m, kinds)}
    per_layer: dict[str, int] = {}
    counter = FlopCounterMode(display=False)
    start: list[int] = []

    def enter(module, args):
        start.append(counter.get_total_flops())

    def hook(module, args, out):
        # The layer's own count: the counter's running total before and after it.
        name = layers[module]
        per_layer[name] = per_layer.get(name, 0) + (counter.get_total_flops() - start.pop()) // 2

    pre = [m.register_forward_pre_hook(enter) for m in layers]
    post = [m.register_forward_hook(hook) for m in layers]
    try:
        with counter:
            model(x)
    finally:
        for h in pre + post:
            h.remove()
        model.train(was_training)
    return Macs(counter.get_total_flops() // 2, per_layer)
