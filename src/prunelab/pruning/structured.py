"""Structured pruning: filters and channels physically removed through Torch-Pruning's dependency graph."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..errors import PrunelabError
from ..models import ModelInfo
from .base import CHANNEL_ALLOCATIONS, ChannelAllocation
from .masks import check_sparsity, prunable_weights
from .spec import ChannelMapShortcut, architecture_spec, build_from_spec, make_prunable  # noqa: F401

TOLERANCE = 0.005  # the search stops within half a percentage point of the requested level, when it can


# ---------------------------------------------------------------- Torch-Pruning's handler for the shortcut


class _ChannelMapPruner(tp.pruner.BasePruningFunc):
    """Torch-Pruning's handler for `ChannelMapShortcut`; in and out channels are independent."""

    def prune_out_channels(self, layer: ChannelMapShortcut, idxs) -> ChannelMapShortcut:
        drop = {int(i) for i in idxs}
        layer.index = layer.index[[j for j in range(layer.out_channels) if j not in drop]]
        return layer

    def prune_in_channels(self, layer: ChannelMapShortcut, idxs) -> ChannelMapShortcut:
        drop = {int(i) for i in idxs}
        kept = [c for c in range(layer.in_channels) if c not in drop]
        device = layer.index.device
        renumber = torch.full((layer.in_channels + 1,), len(kept), dtype=torch.long, device=device)
        renumber[kept] = torch.arange(len(kept), device=device)
        layer.index = renumber[layer.index]
        layer.in_channels = len(kept)
        return layer

    def get_out_channels(self, layer: ChannelMapShortcut) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: ChannelMapShortcut) -> int:
        return layer.in_channels


# ---------------------------------------------------------------- importance (Li et al. 2017)


@torch.no_grad()
def filter_l1(group) -> torch.Tensor:
    """L1 norm of each filter (Li et al. 2017), for channel groups coupled by residual adds: the
    mean over the group's producing convs/linears of the L1 norm of that channel's filter. A
    channel whose filters are all zero scores exactly 0."""
    total = torch.zeros(len(group[0].idxs))
    producers = 0
    for i, (dep, idxs) in enumerate(group):
        layer, fn = dep.layer, dep.pruning_fn
        if fn not in (tp.prune_conv_out_channels, tp.prune_linear_out_channels):
            continue
        w = layer.weight.detach()
        if getattr(layer, "transposed", False):
            w = w.transpose(0, 1)
        norms = w[list(idxs)].flatten(1).abs().sum(1).float().cpu()
        total.scatter_add_(0, torch.tensor(group[i].root_idxs), norms)
        producers += 1
    return total / max(producers, 1)


# ---------------------------------------------------------------- the graph, the allocation, the surgery


@dataclass
class ChannelGroup:
    """One set of coupled channels: its root (a conv/linear), importance, and the conv/linear
    weights each of its channels reaches (module name, 'out'/'in', indices, root indices)."""

    root: str
    channels: int
    importance: torch.Tensor  # (channels,)
    deps: list[tuple[str, str, np.ndarray, np.ndarray]]
    saved: np.ndarray | None = None  # seconds saved by removing k channels, k = 0..channels (a table's)
    tolerance: tuple[np.ndarray, np.ndarray] | None = None  # (top-1 drops, channel ratios) it tolerates

    @property
    def stream(self) -> bool:
        """Several layers write these channels, added together: a residual stream (removing one
        of its channels touches every block of a stage)."""
        return sum(side == "out" for _, side, _, _ in self.deps) > 1


def _trace_failure(model: nn.Module, x: torch.Tensor, what: str, exc: BaseException) -> PrunelabError:
    """Name the innermost layer whose forward raises on `x`, for a one-line error."""
    stack: list[str] = []
    failed: list[str] = []

    def enter(name):
        def hook(module, args):
            stack.append(name)
        return hook

    def leave(module, args, out):
        stack.pop()

    hooks = []
    for name, m in model.named_modules():
        if name:
            hooks += [m.register_forward_pre_hook(enter(name)), m.register_forward_hook(leave)]
    try:
        with torch.no_grad():
            model(x)
    except Exception as again:  # noqa: BLE001 - any failure is reported with its layer
        failed = stack[-1:] or ["<model forward>"]
        exc = again
    finally:
        for h in hooks:
            h.remove()
    layer = failed[0] if failed else "<unknown: the forward ran, the graph did not>"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PrunelabError(f"{what}: Torch-Pruning cannot trace the channels of layer '{layer}' ({first}); "
                         f"this model cannot be pruned structurally, use a mask method")


def _build_graph(net: nn.Module, info: ModelInfo, example_input: torch.Tensor, importance):
    try:
        dg = tp.DependencyGraph().build_dependency(
            net, example_inputs=example_input, customized_pruners={ChannelMapShortcut: _ChannelMapPruner()})
    except Exception as exc:  # noqa: BLE001 - the library's errors become one named line
        raise _trace_failure(net, example_input, "structured pruning", exc) from None
    ignored = [net.get_submodule(info.classifier)]  # the classifier's outputs are the classes
    names = {m: n for n, m in net.named_modules()}
    groups = []
    for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        deps = []
        for i, (dep, idxs) in enumerate(group):
            module = dep.target.module
            if isinstance(module, nn.Conv2d | nn.Linear) and module in names:
                side = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
                deps.append((names[module], side, np.asarray(idxs), np.asarray(group[i].root_idxs)))
        root = names[group[0].dep.target.module]
        groups.append(ChannelGroup(root, len(group[0].idxs), importance(group), deps))
    return dg, groups


def _remaining(module: nn.Module, out_removed: int, in_removed: int) -> int:
    """Weights left in a conv/linear after removing output and input channels."""
    if isinstance(module, nn.Linear):
        return (module.out_features - out_removed) * (module.in_features - in_removed)
    k = math.prod(module.kernel_size)
    if module.groups == 1:
        return (module.out_channels - out_removed) * (module.in_channels - in_removed) * k
    if module.groups == module.in_channels == module.out_channels:  # depthwise: one set of channels
        return (module.out_channels - max(out_removed, in_removed)) * k
    return (module.out_channels - out_removed) * ((module.in_channels - in_removed) // module.groups) * k


def _removed_fraction(net: nn.Module, prunable: dict[str, int], groups: list[ChannelGroup],
                      chosen: list[np.ndarray]) -> float:
    """Fraction of the prunable weights the chosen channels take with them (computed, pre-surgery)."""
    removed: dict[tuple[str, str], set[int]] = {}
    for group, drop in zip(groups, chosen, strict=True):
        if len(drop) == 0:
            continue
        for name, side, idxs, roots in group.deps:
            if f"{name}.weight" in prunable:
                removed.setdefault((name, side), set()).update(idxs[np.isin(roots, drop)].tolist())
    left = 0
    for weight, n in prunable.items():
        name = weight.removesuffix(".weight")
        out_r, in_r = len(removed.get((name, "out"), ())), len(removed.get((name, "in"), ()))
        left += _remaining(net.get_submodule(name), out_r, in_r) if out_r or in_r else n
    return 1.0 - left / sum(prunable.values())


def _round(channels: int, k: int, cap: int, round_to: int | None) -> int:
    """Channels to remove from a group of `channels`: at most `cap`, at least one kept, and the
    kept count rounded to the nearest multiple of `round_to` (never below one multiple), where the
    group has at least `round_to` channels: a group already at one multiple keeps it."""
    k = max(0, min(k, cap, channels - 1))
    if round_to and channels >= round_to and k:
        keep = min(channels, max(round_to, round_to * math.floor((channels - k) / round_to + 0.5)))
        if channels - keep > cap:
            keep = min(channels, round_to * math.ceil((channels - cap) / round_to))
        k = channels - keep
    return k


def _allocate(groups: list[ChannelGroup], ratio: float, counts_of, layer_cap: float,
              round_to: int | None, keep_stream: bool = False) -> list[np.ndarray]:
    """Root indices to remove in each group for channel ratio `ratio` (lowest importance first);
    with `keep_stream`, none of a residual stream's."""
    caps = [0 if keep_stream and g.stream else min(math.floor(layer_cap * g.channels + 1e-9), g.channels - 1)
            for g in groups]
    out = []
    for g, k, cap in zip(groups, counts_of(groups, ratio, caps), caps, strict=True):
        k = _round(g.channels, k, cap, round_to)
        out.append(torch.topk(g.importance, k, largest=False).indices.sort().values.numpy()
                   if k else np.zeros(0, dtype=np.int64))
    return out


@dataclass(frozen=True)
class Structured:
    """A channel- or block-pruned model and how much it lost.

    Attributes:
        model: the smaller model (a new module; the input model is untouched), eval mode.
        requested: the level asked for: fraction of prunable weights to remove.
        achieved: fraction of prunable weights removed, counted on the smaller model.
        channel_ratio: the channel ratio the search settled on (0 where whole blocks went).
        layers: prunable weight name -> (weights removed, original size).
        channels: group root -> (channels kept, original channels).
        kept_outputs: conv/linear name -> the indices of its output channels kept, for the
            layers that lost some (what reconstruction fits each one's output to).
    """

    model: nn.Module
    requested: float
    achieved: float
    channel_ratio: float
    layers: dict[str, tuple[int, int]]
    channels: dict[str, tuple[int, int]]
    kept_outputs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def within_tolerance(self) -> bool:
        return abs(self.achieved - self.requested) <= TOLERANCE


def prune_channels(model: nn.Module, info: ModelInfo, example_input: torch.Tensor, sparsity: float,
                   allocation: str | ChannelAllocation = "layerwise", layer_cap: float | None = None,
                   round_to: int | None = None, original: dict[str, int] | None = None,
                   importance=filter_l1, keep_stream: bool = False, latency_table=None,
                   profile: dict | None = None) -> Structured:
    """Remove whole filters/channels (lowest filter L1 first) until `sparsity` of the prunable
    weights are gone; residual-coupled channels go together (Torch-Pruning's dependency graph).

    Level: the fraction of prunable weights (conv and linear weights, classifier excluded, as for
    masks) physically removed. A bisection on the channel ratio finds the level within
    `TOLERANCE` where the channel granularity allows; `achieved` says what was reached.

    Args:
        model: the trained network (not modified).
        info: its registry metadata; the classifier's outputs are never removed, and no layer
            loses its inputs from the image (the stem's input channels stay).
        example_input: (1, C, H, W) input for tracing, on the model's device.
        sparsity: the level, in [0, 1].
        allocation: a channel allocation or its registered name: "layerwise" (the same channel
            fraction in every group), "global" (one threshold on mean-normalised importances
            across groups), "latency" (the channels giving up least importance per second saved,
            priced by `latency_table`), "sensitivity" (each group what its own curve in `profile`
            tolerates for one drop); `prunelab.pruning.CHANNEL_ALLOCATIONS` lists them.
        layer_cap: largest fraction of any group's channels that may go (default: all but one).
        round_to: keep channel counts at multiples of this (e.g. 8), where a group has at least
            that many (a group already at one multiple keeps it).
        importance: group -> (channels,) scores, low = removed first (default: filter L1).
        keep_stream: remove no channel of a residual stream (only channels inside blocks go).
        latency_table: a `measure.latency_table.LatencyTable` of the network, for "latency".
        profile: a channel sensitivity profile (`prunelab sensitivity --channels`), for
            "sensitivity".
        original: prunable weight name -> size in the network the level is counted against, when
            `model` is already a channel-pruned copy of it (an iterative chain's step): only the
            share still missing is removed, and `achieved`/`layers` count against `original`.
            Default: `model`'s own sizes.

    Returns:
        The smaller model with requested and achieved levels and per-layer counts.
    """
    sparsity = check_sparsity(sparsity)
    share = CHANNEL_ALLOCATIONS.get(allocation) if isinstance(allocation, str) else allocation
    cap = 1.0 if layer_cap is None else check_sparsity(layer_cap, "layer cap")
    if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1):
        raise PrunelabError(f"round_to must be a positive integer, got {round_to!r}")
    net = make_prunable(copy.deepcopy(model).eval(), example_input)
    prunable = {k: w.numel() for k, w in prunable_weights(net, info.classifier).items()}
    base = prunable if original is None else original
    # The share of `net`'s weights to remove so that `sparsity` of `base`'s are gone.
    target = min(1.0, max(0.0, 1.0 - (1.0 - sparsity) * sum(base.values()) / sum(prunable.values())))
    dg, groups = _build_graph(net, info, example_input, importance)
    if share.prepare is not None:
        share.prepare(net, groups, latency_table=latency_table, profile=profile, keep_stream=keep_stream)

    def chosen(r: float) -> list[np.ndarray]:
        return _allocate(groups, r, share.counts, cap, round_to, keep_stream)

    ratio = _search(lambda r: _removed_fraction(net, prunable, groups, chosen(r)), target)
    return _surgery(net, dg, groups, chosen(ratio), info, example_input, base, sparsity, ratio)


def _surgery(net: nn.Module, dg, groups: list[ChannelGroup], chosen: list[np.ndarray], info: ModelInfo,
             example_input: torch.Tensor, base: dict[str, int], requested: float, ratio: float) -> Structured:
    """Remove `chosen` channels of `net` (in place), check the result still runs to the same output
    shape, and count what went against `base`."""
    with torch.no_grad():
        reference_shape = net(example_input).shape
    kept_outputs = _kept_outputs(net, groups, chosen)
    channels = _cut(net, dg, groups, chosen)
    try:
        with torch.no_grad():
            shape = net(example_input).shape
    except Exception as exc:  # noqa: BLE001 - a graph the library got wrong is named, not raised raw
        raise _trace_failure(net, example_input, "after structured pruning", exc) from None
    if shape != reference_shape:
        raise PrunelabError(f"structured pruning changed the output shape {tuple(reference_shape)} -> "
                            f"{tuple(shape)}; Torch-Pruning mis-traced this model, use a mask method")
    after = {k: w.numel() for k, w in prunable_weights(net, info.classifier).items()}
    layers = {k: (n - after[k], n) for k, n in base.items()}
    achieved = 1.0 - sum(after.values()) / sum(base.values())
    return Structured(net.eval(), requested, achieved, ratio, layers, channels, kept_outputs)


def channel_groups(model: nn.Module, info: ModelInfo, example_input: torch.Tensor
                   ) -> dict[str, tuple[int, bool]]:
    """Every group of coupled channels of `model`: root -> (channels, whether a residual stream)."""
    net = make_prunable(copy.deepcopy(model).eval(), example_input)
    _, groups = _build_graph(net, info, example_input, lambda group: torch.zeros(len(group[0].idxs)))
    return {g.root: (g.channels, g.stream) for g in groups}


def prune_group(model: nn.Module, info: ModelInfo, example_input: torch.Tensor, root: str, ratio: float,
                importance=filter_l1, round_to: int | None = None) -> Structured:
    """Remove `ratio` of one group's channels (the group rooted at `root`), lowest importance first,
    and nothing else: a point of a channel sensitivity profile. Its `requested` is `ratio`."""
    ratio = check_sparsity(ratio, "channel ratio")
    net = make_prunable(copy.deepcopy(model).eval(), example_input)
    base = {k: w.numel() for k, w in prunable_weights(net, info.classifier).items()}
    dg, groups = _build_graph(net, info, example_input, importance)
    if root not in {g.root for g in groups}:
        raise PrunelabError(f"'{root}' roots no group of channels of this model; groups: "
                            f"{', '.join(g.root for g in groups[:4])}, ...")
    chosen = []
    for g in groups:
        k = math.floor(ratio * g.channels + 1e-9) if g.root == root else 0
        k = _round(g.channels, k, g.channels - 1, round_to)
        chosen.append(torch.topk(g.importance, k, largest=False).indices.sort().values.numpy()
                      if k else np.zeros(0, dtype=np.int64))
    return _surgery(net, dg, groups, chosen, info, example_input, base, ratio, ratio)


def _kept_outputs(net: nn.Module, groups: list[ChannelGroup], chosen: list[np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Conv/linear name -> the output channels it keeps, for those that lose some (pre-surgery)."""
    removed: dict[str, set[int]] = {}
    for group, drop in zip(groups, chosen, strict=True):
        for name, side, idxs, roots in group.deps:
            if side == "out" and len(drop):
                removed.setdefault(name, set()).update(idxs[np.isin(roots, drop)].tolist())
    out = {}
    for name, gone in removed.items():
        module = net.get_submodule(name)
        n = module.out_features if isinstance(module, nn.Linear) else module.out_channels
        if gone:
            out[name] = np.array([i for i in range(n) if i not in gone], dtype=np.int64)
    return out


def _search(fraction, target: float) -> float:
    """The channel ratio whose removed fraction is closest to `target`; `fraction` is
    non-decreasing in the ratio, so a bisection finds the first ratio that reaches it."""
    if target == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fraction(mid) < target else (lo, mid)
    return hi if abs(fraction(hi) - target) <= abs(fraction(lo) - target) else lo


def _cut(net: nn.Module, dg, groups: list[ChannelGroup], chosen: list[np.ndarray]
         ) -> dict[str, tuple[int, int]]:
    """Remove the chosen channels of every group (in place, through the graph); returns group
    root -> (channels kept, channels before)."""
    channels = {}
    for group, drop in zip(groups, chosen, strict=True):
        channels[group.root] = (group.channels - len(drop), group.channels)
        if len(drop):
            root = net.get_submodule(group.root)
            fn = dg.get_pruner_of_module(root).prune_out_channels
            dg.get_pruning_group(root, fn, drop.tolist()).prune()
    return channels
