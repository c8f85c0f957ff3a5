"""Channels inside blocks bought by measured latency: each block's channels priced by the seconds
their removal saves in the target runtime (a `prunelab latency-table` of the network), the least
important per second saved going first; with or without the least-squares refit."""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ...errors import PrunelabError
from ..base import CHANNEL_ALLOCATIONS, ChannelAllocation
from .channels_rec import register_inner_pair

if TYPE_CHECKING:
    from ..structured import ChannelGroup


def latency_counts(groups: list[ChannelGroup], ratio: float, caps: list[int]) -> list[int]:
    """`ratio` of all channels, bought greedily in the order of least importance given up per
    second of the runtime saved: each group's next channel priced by its mean-normalised importance
    over the seconds the next eighth of the group saves (a measured table's, `ChannelGroup.saved`)."""
    total = sum(g.channels for g in groups)
    k = min(math.floor(ratio * total + 1e-9), sum(caps))
    norm = [(g.importance.sort().values / g.importance.mean().clamp_min(1e-12)).numpy() for g in groups]

    def price(i: int, taken: int) -> float:
        g = groups[i]
        ahead = min(taken + max(1, g.channels // 8), caps[i])
        gain = (g.saved[ahead] - g.saved[taken]) / (ahead - taken)
        return float(norm[i][taken]) / max(float(gain), 1e-12)

    counts = [0] * len(groups)
    heap = [(price(i, 0), i) for i in range(len(groups)) if caps[i] > 0]
    heapq.heapify(heap)
    for _ in range(k):
        _, i = heapq.heappop(heap)
        counts[i] += 1
        if counts[i] < caps[i]:
            heapq.heappush(heap, (price(i, counts[i]), i))
    return counts


def price_groups(net: nn.Module, groups: list[ChannelGroup], *, latency_table=None, **unused) -> None:
    """Give every group the seconds removing its channels saves, from `latency_table` (each layer at
    its present widths, less the group's share of them)."""
    from ...measure.latency_table import widths

    table = latency_table
    if table is None:
        raise PrunelabError("the latency allocation needs a latency table: measure one with 'prunelab "
                            "latency-table CHECKPOINT --out FILE' and pass --latency-table FILE")
    for g in groups:
        shares: dict[str, list[float]] = {}
        for name, side, idxs, _ in g.deps:
            shares.setdefault(name, [0.0, 0.0])[side == "out"] += len(idxs) / g.channels
        k = np.arange(g.channels + 1, dtype=float)
        saved = np.zeros_like(k)
        for name, (s_in, s_out) in shares.items():
            if name not in table.layers:
                raise PrunelabError(f"latency table {table.source} does not price layer '{name}'; it was "
                                    f"measured for another network ('prunelab latency-table' measures one)")
            cin, cout = widths(net.get_submodule(name))
            now = table.seconds(name, cin, cout)
            saved += [now - table.seconds(name, cin - j * s_in, cout - j * s_out) for j in k]
        g.saved = saved


LATENCY = CHANNEL_ALLOCATIONS.register(ChannelAllocation(
    "latency", "the channels giving up least importance per second saved in a measured latency table",
    latency_counts, prepare=price_groups, needs_latency_table=True))

register_inner_pair("latency", LATENCY,
                    "remove the channels inside blocks that give up the least mean-normalised group L1 "
                    "per second saved in a measured latency table (--latency-table)")
