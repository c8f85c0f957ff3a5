"""prunelab: how much of a trained CNN can be pruned before accuracy suffers.

    import prunelab
    result = prunelab.sweep(model, test_set, out="runs/mine", methods=["global", "lamp"])
    smaller = prunelab.prune(model, "global", 0.8, example_inputs=images)
    prunelab.export(smaller, "smaller.onnx", example_inputs=images)
"""

__version__ = "0.1.0"
__all__ = ["PrunelabError", "SweepResult", "__version__", "export", "prune", "sweep"]


def __getattr__(name: str):
    """The verbs load torch on first use, not on `import prunelab` (the CLI's start stays quick)."""
    if name in ("sweep", "prune", "export", "SweepResult"):
        from . import objects

        return getattr(objects, name)
    if name == "PrunelabError":
        from .errors import PrunelabError

        return PrunelabError
    raise AttributeError(f"module 'prunelab' has no attribute '{name}'")
