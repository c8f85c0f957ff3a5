"""Calibration images and what second-order pruners read from them: every layer's input Hessian
H = X Xᵀ / n, gathered in one pass over the images and kept for as long as the network is the same."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from .obs import patches


def state_digest(model: nn.Module) -> str:
    """A hash of every tensor of `model`: the key under which its Hessians are kept."""
    digest = hashlib.sha1()
    for name, t in model.state_dict().items():
        digest.update(name.encode())
        digest.update(t.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


class Calibration:
    """Normalised calibration images (from the training split) and the Hessians of a network's layers.

    Args:
        images: float (N, C, H, W) on the model's device, normalised as the model expects.
        batch_size: images per forward pass while gathering.
    """

    def __init__(self, images: torch.Tensor, batch_size: int = 250):
        self.images, self.batch_size = images, batch_size
        self._cache: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.images)

    def hessians(self, model: nn.Module, weights: list[str]) -> dict[str, torch.Tensor]:
        """H = X Xᵀ / n (float64, columns in OBS order) of the inputs of the layers owning `weights`,
        for `model` as it is now; computed once per network state (every level of a one-shot sweep
        prunes the same trained network, so they share one pass)."""
        key = state_digest(model)
        cached = self._cache.get(key, {})
        missing = [w for w in weights if w not in cached]
        if missing:
            cached.update(self._gather(model, missing))
            self._cache = {key: cached}  # only the latest network's: an iterative chain moves on
        return {w: cached[w] for w in weights}

    @torch.no_grad()
    def _gather(self, model: nn.Module, weights: list[str]) -> dict[str, torch.Tensor]:
        modules = {w: model.get_submodule(w.removesuffix(".weight")) for w in weights}
        sums: dict[str, torch.Tensor] = {}
        rows: dict[str, int] = dict.fromkeys(weights, 0)

        def hook_for(name: str):
            def hook(module, args):
                x = patches(module, args[0]).float()
                gram = (x.T @ x).double()
                sums[name] = sums[name] + gram if name in sums else gram
                rows[name] += x.shape[0]
            return hook

        handles = [m.register_forward_pre_hook(hook_for(w)) for w, m in modules.items()]
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(self.images), self.batch_size):
                model(self.images[start:start + self.batch_size])
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        return {w: sums[w] / max(rows[w], 1) for w in weights}
