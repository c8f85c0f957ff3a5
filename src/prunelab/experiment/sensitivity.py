"""Layer sensitivity: prune each layer alone across levels (or, for channel methods, each block's
inner channels alone across channel ratios); the profile guides per-layer ratios."""

from __future__ import annotations

import json
from collections.abc import Callable

import torch

from ..errors import PrunelabError
from ..pruning import PRUNERS, MaskPruner, PruneContext, Pruned, Pruner
from ..pruning.masks import Masks
from ..recovery import RECOVERIES
from .point import run_point
from .runfolder import PROFILE_FILE, write_text
from .spec import MethodSpec
from .store import DENSE, LAYER_PREFIX, SENSITIVITY, Point, level_key
from .sweep import Sweep

PREFIX = LAYER_PREFIX  # stored method name of a one-layer point: "layer:<parameter name>"


class OneLayer(MaskPruner):
    """Prunes one layer alone, by lowest |w| (as `layerwise` does every layer)."""

    def __init__(self, layer: str):
        self.layer, self.name = layer, PREFIX + layer
        self.description = f"lowest |w| of {layer} only"

    def weights(self, model, ctx: PruneContext) -> dict[str, torch.Tensor]:
        return {self.layer: ctx.prunable(model)[self.layer].detach()}

    def masks(self, weights: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> Masks:
        return PRUNERS.get("layerwise").masks(weights, level, ctx)


class OneGroup(Pruner):
    """Removes a share of one group's channels alone, lowest group L1 first (the channel methods'
    criterion); its level is that share of the group's channels."""

    shrinks = True

    def __init__(self, root: str):
        self.root, self.name = root, PREFIX + root
        self.description = f"lowest group L1 channels of the group rooted at {root} only"

    def prune(self, model, level: float, ctx: PruneContext) -> Pruned:
        from ..pruning.methods.channels_group import GROUP_L1
        from ..pruning.structured import prune_group

        result = prune_group(model, ctx.card.info, ctx.example_input, self.root, self.check_level(level),
                             GROUP_L1.score, ctx.round_to)
        return Pruned(result.model, structured=result)


def layer_method(layer: str, channels: bool = False) -> MethodSpec:
    pruner = OneGroup(layer) if channels else OneLayer(layer)
    return MethodSpec(PREFIX + layer, pruner, RECOVERIES.get("none"))


def units(sweep: Sweep, channels: bool) -> list[str]:
    """What is profiled, in network order: the prunable weights, or the roots of the groups of
    channels inside blocks (those the channel methods that keep the residual streams remove)."""
    if not channels:
        return list(sweep.workbench.prunable)
    from ..pruning.structured import channel_groups

    wb = sweep.workbench
    return [root for root, (_, stream) in channel_groups(wb.model, wb.card.info, wb.ctx.example_input).items()
            if not stream]


def plan(sweep: Sweep, channels: bool = False) -> list[tuple[str, float]]:
    """(layer, level) pairs still missing from the store, in network order."""
    done = sweep.store.keys()
    return [(layer, lv) for layer in units(sweep, channels) for lv in sweep.cfg.levels
            if (PREFIX + layer, level_key(lv), 0) not in done]


def run(sweep: Sweep, on_point: Callable[[Point], None] | None = None, channels: bool = False) -> dict:
    """Compute every missing one-layer (or one-group, `channels`) point (resumable), then write and
    return the profile."""
    if sweep.kind != SENSITIVITY:  # its store would hold one-layer points among a sweep's for good
        raise PrunelabError(f"a sensitivity run needs a Sweep opened for one (kind='{SENSITIVITY}'), "
                            f"not a {sweep.kind}")
    if (DENSE, 0, 0) not in sweep.store.keys():
        sweep.store.add(sweep.point(DENSE, 0.0, 0))
    for layer, level in plan(sweep, channels):
        point = run_point(layer_method(layer, channels), level, 0, sweep.workbench, sweep.folder)
        sweep.store.add(point)
        if on_point is not None:
            on_point(point)
    points = sweep.store.points()
    dense = next(p for p in points if p.method == DENSE)
    layers: dict[str, list] = {}
    for p in points:
        if p.method.startswith(PREFIX):
            layers.setdefault(p.method[len(PREFIX):], []).append([p.target_sparsity, p.top1])
    profile = {"model": sweep.workbench.card.model, "dense_top1": dense.top1, "test_images": dense.n_images,
               "prune_classifier": sweep.cfg.prune_classifier, "unit": "channels" if channels else "weights",
               "layers": {n: sorted(layers[n]) for n in units(sweep, channels) if n in layers}}
    write_text(sweep.folder.root / PROFILE_FILE, json.dumps(profile, indent=1) + "\n")
    return profile


def most_sensitive(profile: dict, n: int = 3) -> list[tuple[str, float]]:
    """The `n` layers of lowest mean top-1 over the levels (the first to protect)."""
    mean_top1 = {name: sum(acc for _, acc in curve) / len(curve) for name, curve in profile["layers"].items()}
    return sorted(mean_top1.items(), key=lambda item: item[1])[:n]
