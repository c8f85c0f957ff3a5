"""Depth pruning: whole residual blocks removed, those whose absence changes the network's outputs
least on calibration images (block-level pruning; residual networks tolerate dropped blocks,
Veit et al. 2016). Removing a block buys latency that thinner layers do not: every layer has a
fixed cost in the runtime, and a block takes two or three layers with it.

A block can go where its shortcut is the identity (no stride, no change of width): the block
computes relu(branch(x) + x) from the previous block's ReLU output x >= 0, so without its branch
it computes relu(x) = x, and the block becomes `nn.Identity`, exactly."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PrunelabError
from ...models.residual import residual_blocks
from ..base import PRUNERS, PruneContext, Pruned, Pruner
from ..masks import prunable_weights
from ..spec import set_module


def removable_blocks(model: nn.Module) -> list[str]:
    """The residual blocks of `model` (torchvision or CIFAR ResNet blocks) whose shortcut is the
    identity, in the order the forward meets them."""
    out = []
    for name, parts in residual_blocks(model).items():
        shortcut = getattr(model.get_submodule(name), parts.shortcut, None) if parts.shortcut else None
        if shortcut is None or isinstance(shortcut, nn.Identity):
            out.append(name)
    return out


@torch.no_grad()
def _log_probs(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([F.log_softmax(model(images[i:i + batch_size]).float(), 1)
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def removal_costs(model: nn.Module, blocks: list[str], images: torch.Tensor,
                  batch_size: int = 250) -> dict[str, float]:
    """Each block's cost of removal, alone: the mean KL divergence from the network's output
    distribution to that of the network without the block, on `images` (read only: `model` is
    not changed)."""
    net = copy.deepcopy(model).eval()
    dense = _log_probs(net, images, batch_size)
    costs = {}
    for name in blocks:
        block = net.get_submodule(name)
        set_module(net, name, nn.Identity())
        without = _log_probs(net, images, batch_size)
        set_module(net, name, block)
        costs[name] = float(F.kl_div(without, dense, reduction="batchmean", log_target=True))
    return costs


def choose_blocks(costs: dict[str, float], weights: dict[str, int], total: int, removed: int,
                  level: float) -> list[str]:
    """The blocks to remove, cheapest first, so that the fraction of `total` prunable weights gone
    (`removed` already, plus each chosen block's `weights`) is as close to `level` as whole blocks
    allow (on a tie, the fewer blocks)."""
    order = sorted(costs, key=lambda name: (costs[name], name))
    best, best_gap, gone = 0, abs(removed / total - level), removed
    for k, name in enumerate(order, 1):
        gone += weights[name]
        if abs(gone / total - level) < best_gap - 1e-12:
            best, best_gap = k, abs(gone / total - level)
    return order[:best]


class BlockPruner(Pruner):
    """Removes whole residual blocks, cheapest first by `removal_costs` on calibration images,
    until the level's share of the prunable weights is gone (as near as whole blocks allow)."""

    name = "blocks"
    description = ("remove whole residual blocks (depth), those whose absence changes the outputs "
                   "least on calibration images; a removed block is the identity")
    shrinks = True
    needs_calibration = True

    def check_model(self, model: nn.Module, ctx: PruneContext) -> None:
        if not removable_blocks(model):
            raise PrunelabError(f"method '{self.name}' removes residual blocks whose shortcut is the "
                                f"identity; this network has none prunelab knows (torchvision or CIFAR "
                                f"ResNet blocks): use a channel method (e.g. channels-global)")

    def prune(self, model: nn.Module, level: float, ctx: PruneContext) -> Pruned:
        from ..structured import Structured

        level = self.check_level(level)
        self.check_model(model, ctx)
        if ctx.calibration is None:
            raise PrunelabError(f"method '{self.name}' needs calibration images (the training split); "
                                f"it runs in a sweep or an export with --data")
        net = copy.deepcopy(model).eval()
        now = {k: w.numel() for k, w in prunable_weights(net, ctx.card.info.classifier).items()}
        base = ctx.original or now
        total = sum(base.values())
        blocks = removable_blocks(net)
        weights = {b: sum(n for k, n in now.items() if k.startswith(f"{b}.")) for b in blocks}
        calibration = ctx.calibration()
        costs = removal_costs(net, blocks, calibration.images, calibration.batch_size)
        for name in choose_blocks(costs, weights, total, total - sum(now.values()), level):
            set_module(net, name, nn.Identity())
        left = {k: w.numel() for k, w in prunable_weights(net, ctx.card.info.classifier).items()}
        layers = {k: (n - left.get(k, 0), n) for k, n in base.items()}
        achieved = 1.0 - sum(left.values()) / total
        return Pruned(net, structured=Structured(net, level, achieved, 0.0, layers, {}))


PRUNERS.register(BlockPruner())
