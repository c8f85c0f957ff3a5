"""Channels inside blocks, each block losing what its own curve tolerates: a channel sensitivity
profile (`prunelab sensitivity --channels`: every block's inner channels removed alone at several
ratios) sets one allowed drop of top-1 for all blocks, found so that the level's weights go;
within a block the lowest group L1 go first. With or without the least-squares refit."""

from __future__ import annotations

from .channels_rec import register_inner_pair

register_inner_pair("sensitivity", "sensitivity",
                    "remove the channels inside blocks of lowest group L1, each block the share its own "
                    "curve in a channel profile tolerates (--sensitivity)")
