"""Channels inside blocks, each block losing what its own curve tolerates: a channel sensitivity
profile (`prunelab sensitivity --channels`: every block's inner channels removed alone at several
ratios) sets one allowed drop of top-1 for all blocks, found so that the level's weights go;
within a block the lowest group L1 go first. With or without the least-squares refit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ...errors import PrunelabError
from ..base import CHANNEL_ALLOCATIONS, ChannelAllocation
from .channels_rec import register_inner_pair

if TYPE_CHECKING:
    from ..structured import ChannelGroup


def sensitivity_counts(groups: list[ChannelGroup], ratio: float, caps: list[int]) -> list[int]:
    """Every group the share of its channels its own curve tolerates for one allowed drop of
    top-1, `ratio` x the largest drop profiled (a channel sensitivity profile's, `ChannelGroup.tolerance`):
    the groups whose removal costs least lose most."""
    most = max(float(g.tolerance[0][-1]) for g in groups)
    out = []
    for g in groups:
        drops, ratios = g.tolerance
        out.append(math.floor(float(np.interp(ratio * most, drops, ratios)) * g.channels + 1e-9))
    return out


def tolerances(net: nn.Module, groups: list[ChannelGroup], *, profile: dict | None = None,
               keep_stream: bool = False, **unused) -> None:
    """Give every group its tolerance from `profile` (channel ratio -> top-1 of that group pruned
    alone): for each drop of top-1 reached along its curve (top-1 made non-increasing), the largest
    profiled ratio within it; a drop between two of them allows a ratio between theirs."""
    if profile is None:
        raise PrunelabError("the sensitivity allocation needs a channel profile: run 'prunelab "
                            "sensitivity CHECKPOINT --channels --out RUN' and pass --sensitivity RUN")
    if profile.get("unit") != "channels":
        raise PrunelabError("the profile given is one of single weights; channel methods read a "
                            "channel profile: run 'prunelab sensitivity CHECKPOINT --channels --out RUN' "
                            "and pass --sensitivity RUN")
    dense = float(profile["dense_top1"])
    for g in groups:
        if keep_stream and g.stream:
            g.tolerance = (np.array([0.0, 1.0]), np.array([0.0, 0.0]))
            continue
        if g.root not in profile["layers"]:
            raise PrunelabError(f"the channel profile has no curve for '{g.root}'; profile the same "
                                f"model with 'prunelab sensitivity --channels'")
        points, low = [], dense  # (drop of top-1 so far along the curve, channel ratio)
        for r, acc in sorted((float(r), float(a)) for r, a in profile["layers"][g.root]):
            low = min(low, acc)
            points.append((dense - low, r))
        drops = sorted({0.0} | {d for d, _ in points})
        ratios = [max([r for d, r in points if d <= x] + [0.0]) for x in drops]
        g.tolerance = (np.array(drops), np.array(ratios))


SENSITIVITY = CHANNEL_ALLOCATIONS.register(ChannelAllocation(
    "sensitivity", "each group the share its own curve in a channel profile tolerates for one drop",
    sensitivity_counts, prepare=tolerances, needs_profile=True))

register_inner_pair("sensitivity", SENSITIVITY,
                    "remove the channels inside blocks of lowest group L1, each block the share its own "
                    "curve in a channel profile tolerates (--sensitivity)")
