"""Group importance for channels: a channel scored by every parameter coupled to it (the filters
producing it, the batch norms scaling it, the input slices of the layers reading it), as
Torch-Pruning's group magnitude importance and DepGraph (Fang et al. 2023) score it, or by its
batch-norm scales alone (network slimming, Liu et al. 2017); and the methods that remove only
channels inside blocks, the residual streams left whole."""

from __future__ import annotations

import torch
from torch import nn

from ..base import GROUP_CRITERIA, PRUNERS, GroupCriterion
from .channels import CHANNELS_GLOBAL, CHANNELS_LAYERWISE, ChannelPruner


def _pieces(group, kinds: tuple[type, ...]):
    """(per-channel slices as rows, root indices) of each of `group`'s parameters of `kinds`:
    a conv/linear's output filters or input slices, a batch norm's scale."""
    import torch_pruning as tp

    consume = (tp.prune_conv_in_channels, tp.prune_linear_in_channels)
    for i, (dep, idxs) in enumerate(group):
        layer, fn, idxs = dep.layer, dep.pruning_fn, list(idxs)
        roots = torch.tensor(group[i].root_idxs)
        if not isinstance(layer, kinds):
            continue
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            if layer.affine:
                yield layer.weight.detach()[idxs, None], roots
        elif fn in (tp.prune_conv_out_channels, tp.prune_linear_out_channels):
            yield layer.weight.detach()[idxs].flatten(1), roots
        elif fn in consume and getattr(layer, "groups", 1) == 1:
            # a grouped conv's input slice is its filters' own (counted as the output side)
            yield layer.weight.detach()[:, idxs].transpose(0, 1).flatten(1), roots


@torch.no_grad()
def group_norm(group, p: int) -> torch.Tensor:
    """Sum over a channel's coupled parameters of |w|^p, averaged over the parameters that hold it
    (Torch-Pruning's group magnitude: no layer rescaled, so the wide filters weigh most)."""
    total, count = torch.zeros(len(group[0].idxs)), torch.zeros(len(group[0].idxs))
    for rows, roots in _pieces(group, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
        total.scatter_add_(0, roots, rows.abs().pow(p).sum(1).float().cpu())
        count.scatter_add_(0, roots, torch.ones(len(rows)))
    return total / count.clamp_min(1)


@torch.no_grad()
def bn_scale(group) -> torch.Tensor:
    """|γ| of the batch norms scaling each channel, averaged (a channel whose scale is 0 is off)."""
    total, count = torch.zeros(len(group[0].idxs)), torch.zeros(len(group[0].idxs))
    for rows, roots in _pieces(group, (nn.modules.batchnorm._BatchNorm,)):
        total.scatter_add_(0, roots, rows[:, 0].abs().float().cpu())
        count.scatter_add_(0, roots, torch.ones(len(rows)))
    return total / count.clamp_min(1)


GROUP_L1 = GROUP_CRITERIA.register(GroupCriterion(
    "group-l1", "L1 norm of every parameter coupled to the channel: filters, batch norms, consumers' "
    "input slices", lambda group: group_norm(group, 1)))
GROUP_L2 = GROUP_CRITERIA.register(GroupCriterion(
    "group-l2", "squared L2 norm of every parameter coupled to the channel (Torch-Pruning's group "
    "magnitude, DepGraph)", lambda group: group_norm(group, 2)))
BN_SCALE = GROUP_CRITERIA.register(GroupCriterion(
    "bn-scale", "|batch-norm scale| of the channel (network slimming, Liu et al. 2017)", bn_scale))

PRUNERS.register(ChannelPruner("channels-inner", CHANNELS_LAYERWISE, GROUP_L1,
                               "remove the channels inside blocks of lowest group L1 (every coupled "
                               "parameter), the same fraction per block; residual streams kept whole",
                               keep_stream=True))
PRUNERS.register(ChannelPruner("channels-inner-global", CHANNELS_GLOBAL, GROUP_L1,
                               "remove the channels inside blocks of lowest mean-normalised group L1 "
                               "across the network; residual streams kept whole", keep_stream=True))
