"""Calibration images and what second-order pruners read from them: every layer's input Hessian
H = X Xᵀ / n, gathered in one pass over the images and kept for as long as the network is the same."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..models.residual import ResidualBlock
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
        rows: at most this many patch rows of one batch enter a Gram matrix; a layer with more
            (early layers: every position of every image) uses a seeded sample of its positions,
            the same for the two inputs of a pair. 32,768 rows per batch still give each layer
            tens of rows per input dimension, at an eighth of ResNet-20's first stage's cost.
    """

    def __init__(self, images: torch.Tensor, batch_size: int = 250, rows: int = 32768):
        self.images, self.batch_size, self.rows = images, batch_size, rows
        self._cache: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.images)

    def pick(self, n: int, device) -> torch.Tensor | None:
        """Which of `n` rows to keep (seeded by `n`, so every pass picks alike), or None for all."""
        if n <= self.rows:
            return None
        generator = torch.Generator().manual_seed(n)
        return torch.randperm(n, generator=generator)[: self.rows].sort().values.to(device)

    def _sample(self, x: torch.Tensor) -> torch.Tensor:
        pick = self.pick(len(x), x.device)
        return x if pick is None else x[pick]

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
                x = self._sample(patches(module, args[0]).float())
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

    @torch.no_grad()
    def paired(self, dense: nn.Module, pruned: nn.Module, weight: str,
               block: tuple[str, ResidualBlock] | None = None) -> tuple[torch.Tensor, ...]:
        """(H, C, D) for one layer: H = X̂ᵀX̂ / n of its inputs in `pruned` (the layers before it pruned
        already) and C = X̂ᵀX / n against its inputs X in `dense`, image by image and position by
        position (float64). Both networks run only as far as that layer.

        With `block` (its name and parts; the layer is its last conv), D = X̂ᵀR / n, where a row of R
        is how far the pruned network's shortcut sits from the dense one's at that output position,
        in the conv's output units (through the dense block's last batch norm, as in eval): a fit to
        X wᵀ + R makes the block's sum, not only its branch, what the dense block gave. Else None."""
        name = weight.removesuffix(".weight")
        layer_d, layer_p = dense.get_submodule(name), pruned.get_submodule(name)
        sums: list[torch.Tensor] | None = None
        rows = 0
        for start in range(0, len(self.images), self.batch_size):
            batch = self.images[start:start + self.batch_size]
            x = patches(layer_d, _input_of(dense, layer_d, batch)).float()
            x_hat = patches(layer_p, _input_of(pruned, layer_p, batch)).float()
            r = _drift(dense, pruned, *block, batch) if block is not None else None
            pick = self.pick(len(x), x.device)
            if pick is not None:
                x, x_hat, r = x[pick], x_hat[pick], r[pick] if r is not None else None
            terms = [x_hat.T @ x_hat, x_hat.T @ x] + ([x_hat.T @ r] if r is not None else [])
            terms = [t.double() for t in terms]
            sums = terms if sums is None else [a + b for a, b in zip(sums, terms, strict=True)]
            rows += x.shape[0]
        h, c, *d = (t / rows for t in sums)
        return h, c, d[0] if d else None


def _drift(dense: nn.Module, pruned: nn.Module, name: str, parts: ResidualBlock,
           batch: torch.Tensor) -> torch.Tensor:
    """(positions, channels): the dense block's shortcut minus the pruned one's on `batch`, divided
    by the block's last batch-norm scale γ / σ (0 where γ is: that channel ignores its conv)."""
    block_d, block_p = dense.get_submodule(name), pruned.get_submodule(name)
    bn = getattr(block_d, parts.bn)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    sigma = torch.sqrt(bn.running_var + bn.eps)
    scale = torch.where(gamma != 0, sigma / torch.where(gamma != 0, gamma, 1.0), 0.0)
    r = (parts.shortcut_of(block_d, _input_of(dense, block_d, batch))
         - parts.shortcut_of(block_p, _input_of(pruned, block_p, batch)))
    r = r * scale[None, :, None, None]
    return r.permute(0, 2, 3, 1).reshape(-1, r.shape[1]).float()


class _Reached(Exception):
    def __init__(self, x: torch.Tensor):
        self.x = x


def _input_of(model: nn.Module, layer: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The input `layer` receives when `model` runs on `batch`; the forward stops there."""
    def stop(module, args):
        raise _Reached(args[0])

    handle = layer.register_forward_pre_hook(stop)
    was_training = model.training
    model.eval()
    try:
        model(batch)
    except _Reached as reached:
        return reached.x
    finally:
        handle.remove()
        model.train(was_training)
    raise RuntimeError(f"the forward never reached layer {type(layer).__name__}")
