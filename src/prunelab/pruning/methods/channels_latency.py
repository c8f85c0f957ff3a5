"""Channels inside blocks bought by measured latency: each block's channels priced by the seconds
their removal saves in the target runtime (a `prunelab latency-table` of the network), the least
important per second saved going first; with or without the least-squares refit."""

from __future__ import annotations

from ..base import PRUNERS
from .channels import ChannelPruner
from .channels_group import GROUP_L1
from .channels_rec import Reconstructed

PRUNERS.register(ChannelPruner("channels-latency", "latency", GROUP_L1,
                               "remove the channels inside blocks that give up the least mean-normalised "
                               "group L1 per second saved in a measured latency table (--latency-table)",
                               keep_stream=True))
PRUNERS.register(Reconstructed("channels-rec-latency", "latency", GROUP_L1,
                               "channels-latency, then refitted by least squares as channels-rec",
                               keep_stream=True))
