"""The pruning animation: weights vanishing layer by layer as the level grows, beside the curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..experiment.store import level_key
from .plots import frame_axes
from .read import RunView, from_dense, layer_zeros, pct

GIF_METHOD = "global"  # the GIF shows this method's layers when it was swept, else the first method


def short_name(name: str, width: int = 22) -> str:
    """A parameter name short enough for a bar label: drop '.weight', then abbreviate from the left
    ('features.denseblock3.denselayer24.conv2.weight' -> 'f.d3.d24.conv2')."""
    parts = name.split(".")
    if len(parts) > 1 and parts[-1] == "weight":
        parts = parts[:-1]
    for i in range(len(parts) - 1):
        if len(".".join(parts)) <= width:
            break
        stem = parts[i].rstrip("0123456789")
        parts[i] = stem[:1] + parts[i][len(stem):] if stem else parts[i]
    text = ".".join(parts)
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _frames(data: RunView, method: str) -> tuple[list[str], list[float], list[np.ndarray]]:
    """(layer names, the level each frame shows, % of weights kept per layer at each frame); a
    level this method skipped shows its last one below."""
    names = list(data.dense.layers)
    sizes = np.array([data.dense.layers[n][1] for n in names])
    own = [float(s) for s in data.curves[method].levels]
    shown = [max((s for s in own if level_key(s) <= level_key(level)), default=0.0) for level in data.levels]
    kept = []
    for level in shown:
        layers = layer_zeros(data.at(method, level))
        kept.append(100 * (1 - np.array([layers[n][0] for n in names]) / sizes))
    return names, shown, kept


def _bars(ax, names: list[str], kept: np.ndarray, color: str, method: str):
    """The left panel: one bar per layer, network order, input at the top."""
    y = np.arange(len(names))
    ax.barh(y, np.full(len(names), 100.0), height=0.8, color="0.88", lw=0)
    bars = ax.barh(y, kept, height=0.8, color=color, lw=0)
    step = max(1, math.ceil(len(names) / 24))  # at most ~24 readable labels at this size
    ax.set_yticks(y[::step], [short_name(n) for n in names[::step]], fontsize=7 if step == 1 else 6)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel("weights kept (%)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(f"{method}: weights kept per layer", fontsize=9)
    return bars


def _curves(ax, data: RunView):
    """The right panel: every method's curve, drawn up to the frame's level, and a marker."""
    frame_axes(ax, data, legend=False)
    ax.xaxis.label.set_size(8)
    ax.yaxis.label.set_size(9)
    ax.tick_params(labelsize=8)
    marker = ax.axvline(0, color="0.2", lw=0.8, ls=":")
    lines, currents = {}, {}
    for m in data.curves:
        lines[m], = ax.plot([], [], "-o", color=data.color(m), ms=3, lw=1.4, label=m)
        currents[m], = ax.plot([], [], "o", color=data.color(m), ms=8, mec="black", mew=0.8)
    # Above the axes: curves grow into every corner as the frames go on.
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(data.curves)),
              fontsize=8, frameon=False, handlelength=1.5, columnspacing=1.2)
    return marker, lines, currents


def write_gif(path: Path, data: RunView) -> None:
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.figure import Figure

    method = GIF_METHOD if GIF_METHOD in data.curves else next(iter(data.curves))
    names, shown, kept = _frames(data, method)
    fig = Figure(figsize=(9, 4.5), dpi=80)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.35]})
    fig.subplots_adjust(left=0.16, right=0.98, bottom=0.12, top=0.84, wspace=0.22)
    bars = _bars(left, names, kept[0], data.color(method), method)
    marker, lines, currents = _curves(right, data)
    title = fig.suptitle("", fontsize=9.5)
    xy = {m: from_dense(data, c)[:3] for m, c in data.curves.items()}

    def draw(i: int):
        level = data.levels[i]
        for bar, width in zip(bars, kept[i], strict=True):
            bar.set_width(width)
        for m, (levels_m, x, top1_m) in xy.items():
            upto = levels_m <= level + 1e-9
            lines[m].set_data(x[upto], top1_m[upto])
            now = np.flatnonzero(np.isclose(levels_m, level, atol=1e-9, rtol=0))
            currents[m].set_data(x[now], top1_m[now])
        marker.set_xdata([100 * level, 100 * level])
        points = data.at(method, shown[i])
        top1 = float(np.mean([p.top1 for p in points]))
        removed = 100 * float(np.mean([p.sparsity for p in points]))
        here = "" if level_key(shown[i]) == level_key(level) else f" (its last level {pct(shown[i])})"
        title.set_text(f"{data.model}, target sparsity {pct(level)}: {method}{here} removed "
                       f"{removed:.1f}% of prunable weights, top-1 {top1:.1f}% "
                       f"(dense {data.dense.top1:.1f}%)")
        return [*bars, *lines.values(), *currents.values(), marker, title]

    anim = FuncAnimation(fig, draw, frames=len(data.levels), blit=False, repeat=False, cache_frame_data=False)
    anim.save(path, writer=PillowWriter(fps=4), dpi=80)
