"""Channels inside blocks bought by measured latency: each block's channels priced by the seconds
their removal saves in the target runtime (a `prunelab latency-table` of the network), the least
important per second saved going first; with or without the least-squares refit."""

from __future__ import annotations

from .channels_rec import register_inner_pair

register_inner_pair("latency", "latency",
                    "remove the channels inside blocks that give up the least mean-normalised group L1 "
                    "per second saved in a measured latency table (--latency-table)")
