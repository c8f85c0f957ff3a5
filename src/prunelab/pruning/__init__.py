"""Pruning: pure scores, allocations and pruners (one method per file in `methods/`), mask maths,
channel surgery, schedules."""

from .base import (
    ALLOCATIONS,
    CHANNEL_ALLOCATIONS,
    CRITERIA,
    GROUP_CRITERIA,
    PRUNERS,
    Allocation,
    ChannelAllocation,
    Criterion,
    GroupCriterion,
    MaskPruner,
    PruneContext,
    Pruned,
    Pruner,
    ScoredPruner,
)

__all__ = ["ALLOCATIONS", "CHANNEL_ALLOCATIONS", "CRITERIA", "GROUP_CRITERIA", "PRUNERS", "Allocation",
           "ChannelAllocation", "Criterion", "GroupCriterion", "MaskPruner", "PruneContext", "Pruned",
           "Pruner", "ScoredPruner"]
