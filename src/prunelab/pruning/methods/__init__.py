"""Pruning methods, one per file: each declares its criterion, allocation and pruner in the
registries of `prunelab.pruning.base`; the first lookup imports every file here."""
