"""Second-order one-shot pruning (`obs`, `obs-lamp`, `obs-global`, `obs-seq-*`, `obs-res-global`,
`obs-N:M`): Optimal Brain Surgeon
layer by layer as SparseGPT solves it (Frantar & Alistarh 2022, 2023; `obc-*` in `exact_obs.py`
solve it exactly, row by row), from the inputs each layer
sees on calibration images. Each layer's weights are pruned where that costs its output least and
the weights it keeps are updated to make up for them, so no retraining is needed to keep much of
the accuracy. How many weights each layer loses comes from a magnitude allocation (the same
fraction everywhere, LAMP, or one global threshold); which ones, and the update, from OBS.
Sequential variants fit each layer on the inputs the layers pruned before it give; `obs-res-global`
also has each residual block's last conv make up for the drift of the shortcut it is added to
(the residual stream carries every earlier block's error, which no branch fit alone removes)."""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from ...errors import PrunelabError
from ...models.residual import ResidualBlock, residual_blocks
from ..base import PRUNERS, PruneContext, Pruned, Pruner
from ..obs import (
    as_columns,
    check_reads_inputs,
    corrected,
    exact_obs,
    from_columns,
    inverse_factor,
    sparsegpt,
)


class OBS(Pruner):
    """OBS on every prunable layer, from the Hessians of the network as it is (one pass over the
    calibration images, shared by every level pruned from the same network)."""

    updates_weights = True
    needs_calibration = True

    def __init__(self, name: str, description: str, counts: str | None = None,
                 nm: tuple[int, int] | None = None, sequential: bool = False, residual: bool = False,
                 exact: bool = False):
        self.name, self.description, self.counts, self.nm, self.exact = name, description, counts, nm, exact
        self.sequential, self.residual = sequential or residual, residual
        if nm is not None:
            self.fixed_level = 1.0 - nm[0] / nm[1]

    def weights(self, model: nn.Module, ctx: PruneContext) -> dict[str, nn.Parameter]:
        params = ctx.prunable(model)
        if self.nm is not None:  # the stem's few input channels fill no group of M, as for nm-N:M
            params = {k: p for k, p in params.items() if k != f"{ctx.card.info.stem}.weight"}
        return params

    def prune(self, model: nn.Module, level: float, ctx: PruneContext) -> Pruned:
        self.check_level(level)
        if ctx.calibration is None:
            raise PrunelabError(f"method '{self.name}' needs calibration images (the training split); "
                                f"it runs in a sweep or an export with --data")
        params = self.weights(model, ctx)
        calibration = ctx.calibration()
        counts = self._counts({k: p.detach() for k, p in params.items()}, level, ctx)
        if self.sequential:
            dense = copy.deepcopy(model)  # what every layer's output is to stay close to
            closes = self._closing_convs(model) if self.residual else {}
        else:
            hessians = calibration.hessians(model, list(params))
        masks = {}
        for i, (name, p) in enumerate(params.items()):
            if ctx.on_layer is not None:
                ctx.on_layer(name, i, len(params))
            if self.sequential:  # this layer's inputs now come from the layers pruned before it
                h, c, drift = calibration.paired(dense, model, name, closes.get(name))
                target = corrected(as_columns(dense.get_parameter(name).detach()), h, c, ctx.damp, drift)
            else:
                h, target = hessians[name], None
            masks[name] = self._layer(name, p, h, counts.get(name), ctx, target)
        return Pruned(model, masks)

    def check_model(self, model: nn.Module, ctx: PruneContext) -> None:
        check_reads_inputs(model, self.weights(model, ctx), self.name)
        if self.residual:
            self._closing_convs(model)

    def _closing_convs(self, model: nn.Module) -> dict[str, tuple[str, ResidualBlock]]:
        """The last conv's weight of every residual block -> (block name, its parts)."""
        blocks = residual_blocks(model)
        if not blocks:
            raise PrunelabError(f"method '{self.name}' fits the residual stream, but this network has "
                                f"no residual blocks prunelab knows (torchvision or CIFAR ResNet blocks); "
                                f"use '{self.name.replace('-res-', '-seq-')}'")
        return {f"{name}.{parts.conv}.weight": (name, parts) for name, parts in blocks.items()}

    def _counts(self, weights: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> dict[str, int]:
        """Weights to prune per layer, from the magnitude allocation this method follows."""
        if self.nm is not None:
            return {}
        masks = PRUNERS.get(self.counts).masks(weights, level, ctx)
        return {name: int((~m).sum()) for name, m in masks.items()}

    @torch.no_grad()
    def _layer(self, name: str, p: nn.Parameter, h: torch.Tensor, prune: int | None, ctx: PruneContext,
               target: torch.Tensor | None = None):
        """Prune one layer in place (starting from `target`, if given, as its (out, d) matrix);
        returns its keep mask (shaped like the weight)."""
        if self.nm is not None and p.shape[1] % self.nm[1]:
            raise PrunelabError(f"N:M {self.nm[0]}:{self.nm[1]} cannot prune layer '{name}': its "
                                f"{p.shape[1]} input channels (features) are not a multiple of {self.nm[1]}")
        w = as_columns(p.detach()) if target is None else target
        h = h.to(w.device)
        prior = None
        if ctx.prior is not None and name in ctx.prior:  # an iterative chain's earlier levels stay pruned
            prior = as_columns(ctx.prior[name].to(w.device))
        u, dead = inverse_factor(h, ctx.damp, name), torch.diag(h) == 0
        if self.exact:
            new, keep = exact_obs(w, u, prune, prior=prior, dead=dead)
        else:
            new, keep = sparsegpt(w, u, prune=prune, nm=self.nm, prior=prior, dead=dead, block=ctx.block)
        p.copy_(from_columns(new, p.shape).to(p.dtype))
        return from_columns(keep, p.shape)


def _nm(match: re.Match) -> OBS:
    n, m = int(match[1]), int(match[2])
    if m < 1 or n > m:
        raise PrunelabError(f"method '{match[0]}': N:M needs 0 <= N <= M and M >= 1")
    return OBS(f"obs-{n}:{m}", f"OBS keeping {n} of every {m} consecutive input channels at each kernel "
                               f"position, the rest updated (sparsity fixed at {1 - n / m:.0%})", nm=(n, m))


PRUNERS.register(OBS("obs", "second-order (OBS, SparseGPT's solver) on calibration images: per layer, "
                            "prune where it costs the output least, update the rest; same fraction per "
                            "layer", counts="layerwise"))
PRUNERS.register(OBS("obs-lamp", "second-order as obs, each layer's share from LAMP scores under one "
                                 "threshold", counts="lamp"))
PRUNERS.register(OBS("obs-global", "second-order as obs, each layer's share from one |w| threshold",
                     counts="global"))
PRUNERS.register(OBS("obs-seq-global", "second-order as obs-global, layer after layer: each fitted, on "
                                       "the inputs the pruned layers before it give, to the dense layer's "
                                       "output (slower: no Hessian is shared between levels)",
                     counts="global", sequential=True))
PRUNERS.register(OBS("obs-res-global", "second-order as obs-seq-global, and the last conv of every residual "
                                       "block also makes up for the residual stream's drift: fitted so the "
                                       "block's sum, not only its branch, is what the dense block gave",
                     counts="global", residual=True))
PRUNERS.register(OBS("obs-seq-lamp", "second-order as obs-seq-global, each layer's share from LAMP",
                     counts="lamp", sequential=True))
PRUNERS.register(_nm(re.fullmatch(r"obs-(\d+):(\d+)", "obs-2:4")))
PRUNERS.pattern(r"obs-(\d+):(\d+)", "obs-N:M", _nm)
