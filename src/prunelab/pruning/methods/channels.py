"""Structured pruning (Li et al. 2017): whole filters/channels of lowest L1 norm removed through
Torch-Pruning's dependency graph, so the result is a plain, smaller network."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from ...errors import PrunelabError
from ..base import (
    CHANNEL_ALLOCATIONS,
    GROUP_CRITERIA,
    PRUNERS,
    ChannelAllocation,
    GroupCriterion,
    PruneContext,
    Pruned,
    Pruner,
)
from ..masks import global_counts

if TYPE_CHECKING:
    from ..structured import ChannelGroup


def _filter_l1(group) -> torch.Tensor:
    from ..structured import filter_l1  # Torch-Pruning is imported only where channels go

    return filter_l1(group)


FILTER_L1 = GROUP_CRITERIA.register(GroupCriterion(
    "filter-l1", "mean L1 norm of the filters producing each coupled channel (Li et al. 2017)", _filter_l1))


def layerwise_counts(groups: list[ChannelGroup], ratio: float, caps: list[int]) -> list[int]:
    """The same channel fraction `ratio` of every group."""
    return [math.floor(ratio * g.channels + 1e-9) for g in groups]


def threshold_counts(groups: list[ChannelGroup], ratio: float, caps: list[int]) -> list[int]:
    """One threshold over importances normalised by their group's mean (layers differ in scale),
    `ratio` of all channels in all, no group over its cap."""
    scores = {i: g.importance / g.importance.mean().clamp_min(1e-12) for i, g in enumerate(groups)}
    total = sum(g.channels for g in groups)
    k = min(math.floor(ratio * total + 1e-9), sum(caps))
    by_group = global_counts(scores, k, dict(enumerate(caps)))
    return [by_group[i] for i in range(len(groups))]


CHANNELS_LAYERWISE = CHANNEL_ALLOCATIONS.register(ChannelAllocation(
    "layerwise", "the same channel fraction of every group", layerwise_counts))
CHANNELS_GLOBAL = CHANNEL_ALLOCATIONS.register(ChannelAllocation(
    "global", "one threshold over importances normalised by their group's mean", threshold_counts))


class ChannelPruner(Pruner):
    """Removes channels until the level's share of the prunable weights is gone, shared between
    groups by `allocation`; with `keep_stream`, only channels inside blocks go (no residual
    stream's)."""

    shrinks = True

    def __init__(self, name: str, allocation: ChannelAllocation, criterion: GroupCriterion, description: str,
                 keep_stream: bool = False):
        self.name, self.allocation, self.criterion = name, allocation, criterion
        self.description, self.keep_stream = description, keep_stream
        self.needs_latency_table = allocation.needs_latency_table
        self.needs_profile = allocation.needs_profile

    def check_model(self, model: nn.Module, ctx: PruneContext) -> None:
        """A --round-to that some layer is wide enough for: else it would round nothing, silently."""
        widest = max((int(w.shape[0]) for w in ctx.prunable(model).values()), default=0)
        if ctx.round_to is not None and ctx.round_to > widest:
            raise PrunelabError(f"--round-to {ctx.round_to} is more channels than any layer has (at most "
                                f"{widest} here), so it would round nothing; pass at most {widest}")

    def prune(self, model: nn.Module, level: float, ctx: PruneContext) -> Pruned:
        from ..structured import prune_channels

        result = prune_channels(model, ctx.card.info, ctx.example_input, self.check_level(level),
                                self.allocation, ctx.layer_cap, ctx.round_to, ctx.original,
                                importance=self.criterion.score, keep_stream=self.keep_stream,
                                latency_table=ctx.latency_table, profile=ctx.profile)
        return Pruned(result.model, structured=result)


PRUNERS.register(ChannelPruner("channels-layerwise", CHANNELS_LAYERWISE, FILTER_L1,
                               "remove the filters/channels of lowest L1 norm, same channel fraction per "
                               "group (Li et al. 2017), physically"))
PRUNERS.register(ChannelPruner("channels-global", CHANNELS_GLOBAL, FILTER_L1,
                               "remove the filters/channels of lowest mean-normalised L1 norm across the "
                               "network, physically"))
