"""Layer sensitivity: prune each layer alone across levels; the profile guides per-layer ratios."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .pruning.masks import apply_masks
from .pruning.methods import compute_masks, get_method
from .results import DENSE, Point, level_key
from .sweep import PROFILE_FILE, Pruned, Sweep

PREFIX = "layer:"  # stored method name of a one-layer point: "layer:<parameter name>"


def layer_point(sweep: Sweep, layer: str, level: float) -> Point:
    """Prune only `layer` (lowest |w|) to `level`, from fresh trained weights, and measure."""
    start = time.perf_counter()
    sweep.model.load_state_dict(sweep.dense_state)
    masks = compute_masks(get_method("layerwise"), {layer: sweep.dense_weights[layer]}, level)
    apply_masks(sweep.model, masks)
    return sweep.measure(Pruned(sweep.model, masks, None), PREFIX + layer, level, 0, start)


def plan(sweep: Sweep) -> list[tuple[str, float]]:
    """(layer, level) pairs still missing from the store, in network order."""
    done = sweep.store.keys()
    return [(layer, lv) for layer in sweep.prunable for lv in sweep.cfg.levels
            if (PREFIX + layer, level_key(lv), 0) not in done]


def run(sweep: Sweep, on_point: Callable[[Point], None] | None = None) -> dict:
    """Compute every missing one-layer point (resumable), then write and return the profile."""
    if (DENSE, 0, 0) not in sweep.store.keys():
        sweep.store.add(sweep.point(DENSE, 0.0, 0))
    for layer, level in plan(sweep):
        point = layer_point(sweep, layer, level)
        sweep.store.add(point)
        if on_point is not None:
            on_point(point)
    points = sweep.store.points()
    dense = next(p for p in points if p.method == DENSE)
    layers: dict[str, list] = {}
    for p in points:
        if p.method.startswith(PREFIX):
            layers.setdefault(p.method[len(PREFIX):], []).append([p.target_sparsity, p.top1])
    profile = {"model": sweep.meta.model, "dense_top1": dense.top1, "test_images": dense.n_images,
               "prune_classifier": sweep.cfg.prune_classifier,
               "layers": {n: sorted(layers[n]) for n in sweep.prunable if n in layers}}
    (sweep.store.folder / PROFILE_FILE).write_text(json.dumps(profile, indent=1) + "\n")
    return profile


def plot(profile: dict, out: str | Path) -> list[Path]:
    """One curve per layer (colour = depth), top-1 against that layer's sparsity; PNG and SVG."""
    from matplotlib import cm
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    names = list(profile["layers"])
    colours = cm.viridis([i / max(len(names) - 1, 1) for i in range(len(names))])
    for name, colour in zip(names, colours, strict=True):
        levels, top1 = zip(*profile["layers"][name], strict=True)
        ax.plot([100 * lv for lv in levels], top1, color=colour, lw=1.2, alpha=0.85,
                label=name.removesuffix(".weight") if len(names) <= 12 else None)
    ax.axhline(profile["dense_top1"], color="k", ls="--", lw=1, label=f"dense {profile['dense_top1']:.1f}%")
    ax.set_xlabel("sparsity of that one layer (%)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{profile['model']}: each prunable layer pruned alone "
                 f"({profile['test_images']:,} test images; colour: depth, dark = first)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    out = Path(out)
    files = [out / "sensitivity.png", out / "sensitivity.svg"]
    for f in files:
        fig.savefig(f, dpi=110)
    return files
