"""Structured pruning (Li et al. 2017): whole filters/channels of lowest L1 norm removed through
Torch-Pruning's dependency graph, so the result is a plain, smaller network."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import PrunelabError
from ..base import GROUP_CRITERIA, PRUNERS, GroupCriterion, PruneContext, Pruned, Pruner


def _filter_l1(group) -> torch.Tensor:
    from ..structured import filter_l1  # Torch-Pruning is imported only where channels go

    return filter_l1(group)


FILTER_L1 = GROUP_CRITERIA.register(GroupCriterion(
    "filter-l1", "mean L1 norm of the filters producing each coupled channel (Li et al. 2017)", _filter_l1))


class ChannelPruner(Pruner):
    """Removes channels until the level's share of the prunable weights is gone (`allocation`:
    "layerwise" = the same channel fraction in every group, "global" = one threshold, "latency" =
    least importance per second saved in a measured latency table, "sensitivity" = what each group's
    own curve in a channel profile tolerates); with `keep_stream`, only channels inside blocks go
    (no residual stream's)."""

    shrinks = True

    def __init__(self, name: str, allocation: str, criterion: GroupCriterion, description: str,
                 keep_stream: bool = False):
        self.name, self.allocation, self.criterion = name, allocation, criterion
        self.description, self.keep_stream = description, keep_stream
        self.needs_latency_table = allocation == "latency"
        self.needs_profile = allocation == "sensitivity"

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


PRUNERS.register(ChannelPruner("channels-layerwise", "layerwise", FILTER_L1,
                               "remove the filters/channels of lowest L1 norm, same channel fraction per "
                               "group (Li et al. 2017), physically"))
PRUNERS.register(ChannelPruner("channels-global", "global", FILTER_L1,
                               "remove the filters/channels of lowest mean-normalised L1 norm across the "
                               "network, physically"))
