"""The architectures, one family per file; each registers itself in `prunelab.models.MODELS`."""
