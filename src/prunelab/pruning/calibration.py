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


def _gram(x: torch.Tensor) -> torch.Tensor:
    return (x.T @ x).double()


def _squares(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(0).double()


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
        self._cache: dict[str, dict[tuple[str, str], torch.Tensor]] = {}

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
        return self._statistic("gram", model, weights)

    def input_rms(self, model: nn.Module, weights: list[str]) -> dict[str, torch.Tensor]:
        """The root mean square of every input column of the layers owning `weights` (d,), float32
        in OBS order: √diag(H) at a fraction of the cost, kept per network state as H is."""
        return self._statistic("rms", model, weights)

    def _statistic(self, kind: str, model: nn.Module, weights: list[str]) -> dict[str, torch.Tensor]:
        key = state_digest(model)
        cached = self._cache.get(key, {})
        missing = [w for w in weights if (kind, w) not in cached]
        if missing:
            found = self._gather(model, missing, _gram if kind == "gram" else _squares)
            cached.update({(kind, w): v if kind == "gram" else v.sqrt().float() for w, v in found.items()})
            self._cache = {key: cached}  # only the latest network's: an iterative chain moves on
        return {w: cached[(kind, w)] for w in weights}

    @torch.no_grad()
    def _gather(self, model: nn.Module, weights: list[str], statistic) -> dict[str, torch.Tensor]:
        """The mean over input rows (sampled positions) of `statistic(rows)` for each layer."""
        modules = {w: model.get_submodule(w.removesuffix(".weight")) for w in weights}
        sums: dict[str, torch.Tensor] = {}
        rows: dict[str, int] = dict.fromkeys(weights, 0)

        def hook_for(name: str):
            def hook(module, args):
                x = self._sample(patches(module, args[0]).float())
                value = statistic(x)
                sums[name] = sums[name] + value if name in sums else value
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
        blocks = (dense.get_submodule(block[0]), pruned.get_submodule(block[0])) if block else None
        sums: list[torch.Tensor] | None = None
        rows = 0
        for start in range(0, len(self.images), self.batch_size):
            batch = self.images[start:start + self.batch_size]
            if blocks is None:
                x, x_hat = _input_of(dense, layer_d, batch), _input_of(pruned, layer_p, batch)
                r = None
            else:  # one forward each gives the block's input and the layer's
                into_d, x = _inputs_of(dense, [blocks[0], layer_d], batch)
                into_p, x_hat = _inputs_of(pruned, [blocks[1], layer_p], batch)
                r = _drift(*blocks, block[1], into_d, into_p)
            x, x_hat = patches(layer_d, x).float(), patches(layer_p, x_hat).float()
            pick = self.pick(len(x), x.device)
            if pick is not None:
                x, x_hat, r = x[pick], x_hat[pick], r[pick] if r is not None else None
            terms = [x_hat.T @ x_hat, x_hat.T @ x] + ([x_hat.T @ r] if r is not None else [])
            terms = [t.double() for t in terms]
            sums = terms if sums is None else [a + b for a, b in zip(sums, terms, strict=True)]
            rows += x.shape[0]
        h, c, *d = (t / rows for t in sums)
        return h, c, d[0] if d else None


def _drift(block_d: nn.Module, block_p: nn.Module, parts: ResidualBlock, into_d: torch.Tensor,
           into_p: torch.Tensor) -> torch.Tensor:
    """(positions, channels): the dense block's shortcut of its input `into_d` minus the pruned
    one's of `into_p`, divided by the block's last batch-norm scale γ / σ (0 where γ is: that
    channel ignores its conv)."""
    bn = getattr(block_d, parts.bn)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    sigma = torch.sqrt(bn.running_var + bn.eps)
    scale = torch.where(gamma != 0, sigma / torch.where(gamma != 0, gamma, 1.0), 0.0)
    r = (parts.shortcut_of(block_d, into_d) - parts.shortcut_of(block_p, into_p)) * scale[None, :, None, None]
    return r.permute(0, 2, 3, 1).reshape(-1, r.shape[1]).float()


class _Reached(Exception):
    pass


def _input_of(model: nn.Module, layer: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The input `layer` receives when `model` runs on `batch`; the forward stops there."""
    return _inputs_of(model, [layer], batch)[0]


def _inputs_of(model: nn.Module, layers: list[nn.Module], batch: torch.Tensor) -> list[torch.Tensor]:
    """The inputs `layers` receive when `model` runs on `batch`, in one forward that stops at the
    last of them (the others are met before it)."""
    seen: dict[int, torch.Tensor] = {}

    def record(module, args):
        seen[id(module)] = args[0]
        if module is layers[-1]:
            raise _Reached

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        model(batch)
    except _Reached:
        return [seen[id(layer)] for layer in layers]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    raise RuntimeError(f"the forward never reached layer {type(layers[-1]).__name__}")
