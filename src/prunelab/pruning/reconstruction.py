"""Channel pruning with reconstruction (He et al. 2017; ThiNet, Luo et al. 2017): once channels
are gone, every layer that lost inputs is refitted by least squares on calibration images, so
that it gives, from what the pruned network now feeds it, what the dense layer gave from the dense
inputs. So does every layer after the first that lost inputs: what reaches it has changed too (a
block's first conv reads a residual stream carrying the error of every block before it), and
refitting it makes up for that error. Layers are refitted in network order in one pass, each
seeing the inputs that the layers refitted before it produce; the solve is the one sequential
second-order pruning uses (`obs.corrected`: ŵ = w Cᵀ H⁻¹, H damped), so its output error, not its
weights, is kept small."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .calibration import Calibration
from .obs import as_columns, corrected, from_columns, patches

CHUNK = 128  # images per Gram update: the patches of a whole calibration set would not fit


def starved(dense: nn.Module, pruned: nn.Module) -> list[str]:
    """The conv/linear layers of `pruned` that lost input channels, in network order."""
    out = []
    for name, layer in pruned.named_modules():
        if isinstance(layer, nn.Conv2d | nn.Linear) and name:
            before = dense.get_submodule(name)
            if _inputs(layer) != _inputs(before):
                out.append(name)
    return out


def downstream(dense: nn.Module, pruned: nn.Module) -> list[str]:
    """The conv/linear layers of `pruned` from the first that lost input channels on, in network
    order: those whose inputs the pruning changed."""
    lost = starved(dense, pruned)
    names = [n for n, layer in pruned.named_modules() if isinstance(layer, nn.Conv2d | nn.Linear) and n]
    return names[names.index(lost[0]):] if lost else []


def _inputs(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


@torch.no_grad()
def reconstruct(dense: nn.Module, pruned: nn.Module, kept_outputs: dict[str, np.ndarray],
                calibration: Calibration, damp: float,
                on_layer: Callable[[str, int, int], None] | None = None) -> list[str]:
    """Refit, in place, every layer of `pruned` whose inputs changed (`downstream`); returns their names.

    Args:
        dense: the network before channels went (read only).
        pruned: its channel-pruned copy (same module names), refitted in place.
        kept_outputs: layer -> the output channels it kept, for layers that lost some (their
            dense rows are the target); others keep all.
        calibration: the images, and how many patch rows of a chunk enter a Gram matrix.
        damp: added to H's diagonal as a fraction of its mean, as for second-order pruning.
        on_layer: told (layer, index, layers) as each layer is refitted.
    """
    names = downstream(dense, pruned)
    if not names:
        return names
    wanted = {dense.get_submodule(n): n for n in names}
    inputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def keep(module, args):
        inputs[wanted[module]].append(args[0])

    _run(dense, calibration, [m.register_forward_pre_hook(keep) for m in wanted], batched=True)
    done, refitted = [], {pruned.get_submodule(n): n for n in names}

    def refit(module, args):
        name = refitted[module]
        if on_layer is not None:
            on_layer(name, len(done), len(names))
        x_dense = torch.cat(inputs.pop(name))
        h, c = _grams(dense.get_submodule(name), module, x_dense, args[0], calibration)
        w = as_columns(dense.get_submodule(name).weight.detach())
        rows = kept_outputs.get(name)
        if rows is not None:
            w = w[torch.as_tensor(rows, device=w.device)]
        fitted = corrected(w, h, c, damp)
        module.weight.copy_(from_columns(fitted, module.weight.shape).to(module.weight.dtype))
        done.append(name)

    hooks = [m.register_forward_pre_hook(refit) for m in refitted]
    _run(pruned, calibration, hooks, batched=False)  # every image at once: each layer is refitted once
    return done


def _grams(layer_d: nn.Module, layer_p: nn.Module, x: torch.Tensor, x_hat: torch.Tensor,
           calibration: Calibration) -> tuple[torch.Tensor, torch.Tensor]:
    """H = X̂ᵀX̂ / n and C = X̂ᵀX / n (float64) over the same positions of the same images."""
    h = c = None
    rows = 0
    for start in range(0, len(x), CHUNK):
        a = patches(layer_d, x[start:start + CHUNK]).float()
        b = patches(layer_p, x_hat[start:start + CHUNK]).float()
        pick = calibration.pick(len(a), a.device)
        if pick is not None:
            a, b = a[pick], b[pick]
        hh, cc = (b.T @ b).double(), (b.T @ a).double()
        h, c = (hh, cc) if h is None else (h + hh, c + cc)
        rows += len(a)
    return h / rows, c / rows


def _run(model: nn.Module, calibration: Calibration, hooks, batched: bool) -> None:
    """`model` over the calibration images (in the calibration's batches, or all at once), in
    eval mode, then the hooks removed."""
    was_training = model.training
    model.eval()
    step = calibration.batch_size if batched else len(calibration.images)
    try:
        for start in range(0, len(calibration.images), step):
            model(calibration.images[start:start + step])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
