"""prunelab: how much of a trained CNN can be pruned before accuracy suffers."""

__version__ = "0.1.0"
