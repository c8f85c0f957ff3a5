"""Plot of a sensitivity profile: one curve per layer."""

from __future__ import annotations

from pathlib import Path

from .plots import save


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
    save(fig, *files, dpi=110)
    return files
