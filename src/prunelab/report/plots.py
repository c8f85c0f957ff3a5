"""The report's plots: accuracy against sparsity, and against what is saved (MACs, latency, bytes)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..experiment.analysis import pareto, sized, smallest_within
from ..experiment.store import level_key
from .read import RunView, from_dense, latency_setup, mean_of


def limits(data: RunView) -> tuple[float, float]:
    """Top-1 axis range (percent) holding every curve, its seed band, dense and the budget band."""
    lows = [c.top1 - c.top1_std for c in data.curves.values()]
    highs = [c.top1 + c.top1_std for c in data.curves.values()]
    budget = next(iter(data.answers.values())).budget
    lo = min(float(np.min(np.concatenate(lows))), data.dense.top1 - budget)
    hi = max(float(np.max(np.concatenate(highs))), data.dense.top1)
    pad = max(2.0, 0.06 * (hi - lo))
    return max(0.0, lo - pad), min(101.0, hi + pad)


def frame_axes(ax, data: RunView, legend: bool) -> None:
    """What the static plot and the GIF's right panel share: axes, dense line, budget band."""
    dense = data.dense.top1
    budget = next(iter(data.answers.values())).budget
    ax.axhspan(dense - budget, dense, color="0.55", alpha=0.18, lw=0,
               label=f"budget: {budget:g} pt below dense" if legend else None)
    ax.axhline(dense, color="0.25", ls="--", lw=1, label=f"dense {dense:.1f}%" if legend else None)
    ax.set_xlim(-2, 102)
    ax.set_ylim(*limits(data))
    ax.set_xlabel("sparsity (% of prunable weights removed, measured)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3, lw=0.5)


def write_plot(png: Path, svg: Path, data: RunView) -> None:
    from matplotlib.figure import Figure  # needs no backend; nothing global is touched

    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    frame_axes(ax, data, legend=True)
    for method, curve in data.curves.items():
        a, color = data.answers[method], data.color(method)
        _, x, top1, std = from_dense(data, curve)
        seeds = max(data.seeds(method, s) for s in curve.levels)
        label = f"{method}" + (f" (mean of {seeds} seeds, ±1 std)" if seeds > 1 else "")
        ax.plot(x, top1, "-o", color=color, ms=3.5, lw=1.5, label=label, zorder=3)
        if seeds > 1:
            ax.fill_between(x, top1 - std, top1 + std,
                            color=color, alpha=0.2, lw=0)
        if not a.found:
            continue
        xa = 100 * a.measured_sparsity
        ax.axvline(xa, color=color, ls=":", lw=1.2, alpha=0.8)
        ax.hlines(a.top1, 100 * a.ci_low, 100 * a.ci_high, color=color, lw=5, alpha=0.35, zorder=2)
        ax.plot(xa, a.top1, "*", color=color, ms=15, mec="black", mew=0.7, zorder=4,
                label=f"{method} answer {100 * a.sparsity:.1f}% "
                      f"(95% CI {100 * a.ci_low:.1f}–{100 * a.ci_high:.1f}%)")
    ax.set_title(f"{data.model}: top-1 against sparsity, {data.n_images:,} test images "
                 f"(★ largest sparsity within {next(iter(data.answers.values())).budget:g} pt of dense)",
                 fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False,
              title="bar under ★ = 95% interval", title_fontsize=8)
    save(fig, png, svg, dpi=120)


def save(fig, png: Path, svg: Path, dpi: int) -> None:
    """PNG and SVG of `fig`, byte for byte the same for the same results: no timestamp, and the
    SVG's ids hashed with a fixed salt (one per file, so pages inlining several never share an id)."""
    import matplotlib

    fig.savefig(png, dpi=dpi)
    with matplotlib.rc_context({"svg.hashsalt": f"prunelab-{svg.stem}"}):
        fig.savefig(svg, metadata={"Date": None})


def has_savings(data: RunView) -> bool:
    return data.dense.macs is not None


def savings_series(data: RunView, method: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(x = mean of `field`, top-1) over a method's levels, from the dense model on; levels
    missing the field are left out."""
    xs, ys = [], []
    curve = data.curves[method]
    levels = [] if curve.quantized else [0.0]  # a quantized curve does not start at the float dense model
    levels += [float(s) for s in curve.levels if curve.quantized or level_key(s) != 0]
    for level in levels:
        group = data.at(method, level)
        x = mean_of(group, field)
        if x is not None:
            xs.append(x)
            ys.append(float(np.mean([p.top1 for p in group])))
    return np.array(xs), np.array(ys)


def write_savings_plot(png: Path, svg: Path, data: RunView) -> None:
    """Top-1 against what the user gets: sparsity, MACs, latency and file size, each labelled."""
    save(savings_figure(data), png, svg, dpi=110)


def savings_figure(data: RunView):
    from matplotlib.figure import Figure

    latency = data.dense.latency_b1 is not None
    dense_macs = data.dense.macs * 1e-6
    # MACs as run stay at the dense count for every mask method (dense kernels multiply the zeros):
    # against them those curves stand on one vertical line. The panel plots effective MACs, which
    # differ per point; the dotted line marks what the masked models really run.
    panels = [("sparsity", "sparsity (% of prunable weights removed, measured)", 100.0),
              ("effective_macs", "effective MACs per image, millions (theory: each layer scaled by its "
               f"density; channel methods run this; dotted: the dense {dense_macs:,.1f} M that masked "
               "models run)", 1e-6)]
    if has_files(data):  # a sweep without --file-size measures no one-shot mask point's file
        panels.append(("file_bytes", "exported file, MiB (measured on disk)", 1 / 2**20))
    if latency:
        setup = latency_setup(data)
        panels.insert(2, ("latency_b1", f"latency, batch 1, ms (measured, median, {setup})", 1e3))
    fig = Figure(figsize=(5.2 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, (name, label, scale) in zip(axes, panels, strict=True):
        ax.axhline(data.dense.top1, color="0.25", ls="--", lw=1)
        if name == "effective_macs":
            ax.axvline(dense_macs, color="0.35", ls=":", lw=1.2)
        for method in data.curves:
            x, y = savings_series(data, method, name)
            if len(x):
                ax.plot(x * scale, y, "-o", ms=3.5, lw=1.4, color=data.color(method), label=method)
        ax.set_xlabel(textwrap.fill(label, 64), fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
        if name != "sparsity":
            ax.invert_xaxis()  # savings grow to the right, as sparsity does
    axes[0].set_ylabel("top-1 accuracy (%)")
    axes[0].set_ylim(*limits(data))
    axes[0].legend(loc="lower left", fontsize=8, frameon=False)  # every method has a sparsity curve
    fig.suptitle(f"{data.model}: accuracy against what is saved ({data.n_images:,} test images; dashed "
                 f"line: dense {data.dense.top1:.1f}%)", fontsize=11)
    return fig


def has_files(data: RunView) -> bool:
    return bool(sized(data.points))


def write_memory_plot(png: Path, svg: Path, data: RunView, budget: float) -> None:
    """Top-1 against bytes on disk for every measured file, the Pareto frontier, the budget, and
    the smallest file within it (★)."""
    import matplotlib
    import matplotlib.ticker
    from matplotlib.figure import Figure

    items, dense = sized(data.points), data.dense
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    ax.axhspan(dense.top1 - budget, dense.top1, color="0.55", alpha=0.18, lw=0,
               label=f"budget: {budget:g} pt below dense")
    ax.axhline(dense.top1, color="0.25", ls="--", lw=1, label=f"dense {dense.top1:.1f}%")
    ax.axvline(dense.dense_bytes / 1e3, color="0.25", ls=":", lw=1, label="dense float32 tensors")
    bases = list(dict.fromkeys(m.partition("@")[0] for m in data.curves))
    palette = matplotlib.colormaps["tab20"]
    for i, method in enumerate(data.curves):  # colour: the series; marker: its base (float) method
        mine = [s for s in items if s.method == method]
        if mine:
            marker = "osD^vP*X"[bases.index(method.partition("@")[0]) % 8]
            ax.plot([s.file_bytes / 1e3 for s in mine], [s.top1 for s in mine], marker, ms=5,
                    color=palette(i % 20), label=method, alpha=0.9, ls="none")
    front = pareto(items)
    ax.step([s.file_bytes / 1e3 for s in front], [s.top1 for s in front], where="post", color="black",
            lw=1.2, label="Pareto frontier")
    best = smallest_within(items, dense.top1, budget)
    if best is not None:
        ax.plot(best.file_bytes / 1e3, best.top1, "*", ms=16, color="gold", mec="black", mew=0.8, zorder=5,
                label=f"smallest within budget: {best.method} at {100 * best.level:.0f}%, "
                      f"{best.file_bytes / 1e3:,.1f} kB ({dense.dense_bytes / best.file_bytes:.1f}x smaller)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.invert_xaxis()  # savings grow to the right
    ax.set_ylim(*limits(data))
    ax.set_xlabel("file on disk, kB (measured; log scale)")
    ax.set_ylabel("top-1 accuracy (%) of the network the file holds")
    ax.grid(alpha=0.3, lw=0.5, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{data.model}: accuracy against memory, {data.n_images:,} test images", fontsize=11)
    save(fig, png, svg, dpi=120)
