"""Recoveries, one per file; each registers itself in `prunelab.recovery.RECOVERIES`."""
