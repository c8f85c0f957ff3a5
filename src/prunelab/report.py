"""Reports from the results store alone: CSV, Markdown summary, accuracy plot, per-layer table, GIF."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import Answer, Curve, answer, split
from .errors import PrunelabError
from .results import CSV_FIELDS, DENSE, RETIMED, Point, Store, level_key

CSV_FILE = "results.csv"
MARKDOWN_FILE = "report.md"
PLOT_FILE = "accuracy_vs_sparsity"  # .png and .svg
SAVINGS_FILE = "accuracy_vs_savings"  # .png and .svg, when the points carry savings
GIF_FILE = "pruning.gif"
GIF_METHOD = "global"  # the GIF shows this method's layers when it was swept, else the first method


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote.

    Attributes:
        folder: where the files are.
        files: "csv", "markdown", "plot_png", "plot_svg", (unless skipped) "gif", and when the
            points carry savings "savings_png", "savings_svg" -> path.
        answers: method -> its answer (largest sparsity within the budget, with bootstrap interval).
    """

    folder: Path
    files: dict[str, Path]
    answers: dict[str, Answer]


@dataclass(frozen=True)
class _Run:
    """Everything a report shows, read once from the store."""

    points: list[Point]
    dense: Point
    curves: dict[str, Curve]  # in sweep order
    answers: dict[str, Answer]
    groups: dict[tuple[str, int], list[Point]]  # (method, level ppm) -> one point per seed
    fingerprint: dict
    config: dict
    version: str | None
    retimed: set[tuple[str, int, int]] = field(default_factory=set)  # keys timed side by side

    @property
    def model(self) -> str:
        return str(self.fingerprint.get("model") or self.config.get("resolved_model") or "model")

    @property
    def n_images(self) -> int:
        return self.dense.n_images

    @property
    def levels(self) -> list[float]:
        """Every swept target sparsity, ascending (the GIF has one frame per level)."""
        keys = {level_key(s): float(s) for c in self.curves.values() for s in c.levels}
        return [keys[k] for k in sorted(keys)]

    def color(self, method: str) -> str:
        return f"C{list(self.curves).index(method) % 10}"

    def at(self, method: str, level: float) -> list[Point]:
        """The points (one per seed) of `method` at `level`; sparsity 0 unswept is the dense model."""
        group = self.groups.get((method, level_key(level)))
        if group:
            return group
        if level_key(level) == 0:
            return [self.dense]
        raise KeyError((method, level))

    def seeds(self, method: str, level: float) -> int:
        return len(self.groups.get((method, level_key(level)), ()))


def write_report(run: str | os.PathLike, budget: float = 1.0, n_boot: int = 2000,
                 out: str | os.PathLike | None = None, gif: bool = True) -> Report:
    """Write the report of a run folder from its results store only (no model, no data).

    Args:
        run: the run folder holding `results.sqlite`.
        budget: allowed top-1 drop below dense, in percentage points (>= 0).
        n_boot: bootstrap replicates over the test images for each answer's 95% interval (>= 0).
        out: folder to write into; default `run/report/`.
        gif: also write the animation (the slowest file, a few seconds).

    Returns:
        The folder, the files written by kind, and each method's answer.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise PrunelabError(f"the number of bootstrap replicates must be an integer >= 0, got {n_boot!r}")
    run = Path(run)
    data = _read(run, budget, n_boot)
    folder = Path(out) if out is not None else run / "report"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrunelabError(f"cannot write the report folder {folder}: {exc}; "
                            f"pass a writable --out") from None

    files = {"csv": folder / CSV_FILE, "markdown": folder / MARKDOWN_FILE,
             "plot_png": folder / f"{PLOT_FILE}.png", "plot_svg": folder / f"{PLOT_FILE}.svg"}
    if gif:
        files["gif"] = folder / GIF_FILE
    _write_csv(files["csv"], data.points)
    _write_plot(files["plot_png"], files["plot_svg"], data)
    if _has_savings(data):
        files["savings_png"] = folder / f"{SAVINGS_FILE}.png"
        files["savings_svg"] = folder / f"{SAVINGS_FILE}.svg"
        _write_savings_plot(files["savings_png"], files["savings_svg"], data)
    if gif:
        _write_gif(files["gif"], data)
    files["markdown"].write_text(_markdown(data, files), encoding="utf-8")
    return Report(folder, files, data.answers)


# ---------------------------------------------------------------- reading


def _read(run: Path, budget: float, n_boot: int) -> _Run:
    store = Store.open(run)
    try:
        points = store.points()
        fingerprint = store.meta("fingerprint") or {}
        config = store.meta("config") or {}
        version = store.meta("prunelab_version")
        retimed = {tuple(k) for k in store.meta(RETIMED) or ()}
    finally:
        store.close()
    dense, curves = split(points)
    if not curves:
        raise PrunelabError(f"{run} holds only the dense baseline, no pruned points yet; "
                            f"run 'prunelab sweep --out {run}' to sweep the methods")
    swept = [m for m in config.get("methods", ()) if m in curves]
    order = swept + sorted(set(curves) - set(swept))
    curves = {m: curves[m] for m in order}
    answers = {m: answer(dense, c, budget, n_boot) for m, c in curves.items()}
    groups: dict[tuple[str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.method, level_key(p.target_sparsity)), []).append(p)
    dense_first = sorted(points, key=lambda p: p.method != DENSE)  # stable: store order otherwise
    return _Run(dense_first, dense, curves, answers, groups, fingerprint, config, version, retimed)


def _layers(points: list[Point]) -> dict[str, tuple[float, int]]:
    """Per-layer (zeros, size), zeros averaged over the points (seeds); network order."""
    names = list(points[0].layers)
    return {n: (float(np.mean([p.layers[n][0] for p in points])), points[0].layers[n][1]) for n in names}


def _from_dense(data: _Run, curve: Curve) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(levels, measured sparsity %, top-1 %, std) of a curve, starting at the dense model when
    sparsity 0 was not swept (it is the dense model, as the answer counts it)."""
    levels, x, top1, std = curve.levels, 100 * curve.sparsity, curve.top1, curve.top1_std
    if level_key(levels[0]) != 0:
        levels, x = np.r_[0.0, levels], np.r_[0.0, x]
        top1, std = np.r_[data.dense.top1, top1], np.r_[0.0, std]
    return levels, x, top1, std


# ---------------------------------------------------------------- CSV


def _write_csv(path: Path, points: list[Point]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for p in points:
            writer.writerow(["" if getattr(p, name) is None else getattr(p, name) for name in CSV_FIELDS])


# ---------------------------------------------------------------- plots


def _limits(data: _Run) -> tuple[float, float]:
    """Top-1 axis range (percent) holding every curve, its seed band, dense and the budget band."""
    lows = [c.top1 - c.top1_std for c in data.curves.values()]
    highs = [c.top1 + c.top1_std for c in data.curves.values()]
    budget = next(iter(data.answers.values())).budget
    lo = min(float(np.min(np.concatenate(lows))), data.dense.top1 - budget)
    hi = max(float(np.max(np.concatenate(highs))), data.dense.top1)
    pad = max(2.0, 0.06 * (hi - lo))
    return max(0.0, lo - pad), min(101.0, hi + pad)


def _frame_axes(ax, data: _Run, legend: bool) -> None:
    """What the static plot and the GIF's right panel share: axes, dense line, budget band."""
    dense = data.dense.top1
    budget = next(iter(data.answers.values())).budget
    ax.axhspan(dense - budget, dense, color="0.55", alpha=0.18, lw=0,
               label=f"budget: {budget:g} pt below dense" if legend else None)
    ax.axhline(dense, color="0.25", ls="--", lw=1, label=f"dense {dense:.1f}%" if legend else None)
    ax.set_xlim(-2, 102)
    ax.set_ylim(*_limits(data))
    ax.set_xlabel("sparsity (% of prunable weights removed, measured)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3, lw=0.5)


def _write_plot(png: Path, svg: Path, data: _Run) -> None:
    from matplotlib.figure import Figure  # needs no backend; nothing global is touched

    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    _frame_axes(ax, data, legend=True)
    for method, curve in data.curves.items():
        a, color = data.answers[method], data.color(method)
        _, x, top1, std = _from_dense(data, curve)
        seeds = max(data.seeds(method, s) for s in curve.levels)
        label = f"{method}" + (f" (mean of {seeds} seeds, ±1 std)" if seeds > 1 else "")
        ax.plot(x, top1, "-o", color=color, ms=3.5, lw=1.5, label=label, zorder=3)
        if seeds > 1:
            ax.fill_between(x, top1 - std, top1 + std,
                            color=color, alpha=0.2, lw=0)
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
    fig.savefig(png, dpi=120)
    fig.savefig(svg, metadata={"Date": None})  # no timestamp: same results, same file


def _has_savings(data: _Run) -> bool:
    return data.dense.macs is not None


def _mean(points: list[Point], field: str) -> float | None:
    values = [getattr(p, field) for p in points]
    return None if any(v is None for v in values) else float(np.mean(values))


def _savings_series(data: _Run, method: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(x = mean of `field`, top-1) over a method's levels, from the dense model on; levels
    missing the field are left out."""
    xs, ys = [], []
    levels = [0.0] + [float(s) for s in data.curves[method].levels if level_key(s) != 0]
    for level in levels:
        group = data.at(method, level)
        x = _mean(group, field)
        if x is not None:
            xs.append(x)
            ys.append(float(np.mean([p.top1 for p in group])))
    return np.array(xs), np.array(ys)


def _write_savings_plot(png: Path, svg: Path, data: _Run) -> None:
    """Top-1 against what the user gets: sparsity, MACs, latency and file size, each labelled."""
    from matplotlib.figure import Figure

    latency = data.dense.latency_b1 is not None
    panels = [("sparsity", "sparsity (% of prunable weights removed, measured)", 100.0),
              ("macs", "MACs per image, millions (counted as run; dashed: effective, theory)", 1e-6),
              ("file_bytes", "exported file, MiB (measured on disk)", 1 / 2**20)]
    if latency:
        setup = _latency_setup(data)
        panels.insert(2, ("latency_b1", f"latency, batch 1, ms (measured, median, {setup})", 1e3))
    fig = Figure(figsize=(5.2 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, (name, label, scale) in zip(axes, panels, strict=True):
        ax.axhline(data.dense.top1, color="0.25", ls="--", lw=1)
        for method in data.curves:
            x, y = _savings_series(data, method, name)
            if len(x):
                ax.plot(x * scale, y, "-o", ms=3.5, lw=1.4, color=data.color(method), label=method)
            if name == "macs":
                xe, ye = _savings_series(data, method, "effective_macs")
                if len(xe) and not np.allclose(xe, x):
                    ax.plot(xe * scale, ye, "--", lw=1.1, color=data.color(method), alpha=0.8)
        ax.set_xlabel(label, fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
        if name != "sparsity":
            ax.invert_xaxis()  # savings grow to the right, as sparsity does
    axes[0].set_ylabel("top-1 accuracy (%)")
    axes[0].set_ylim(*_limits(data))
    axes[0].legend(loc="lower left", fontsize=8, frameon=False)  # every method has a sparsity curve
    fig.suptitle(f"{data.model}: accuracy against what is saved ({data.n_images:,} test images; dashed "
                 f"line: dense {data.dense.top1:.1f}%)", fontsize=11)
    fig.savefig(png, dpi=110)
    fig.savefig(svg, metadata={"Date": None})


def _short(name: str, width: int = 22) -> str:
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


def _write_gif(path: Path, data: _Run) -> None:
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.figure import Figure

    method = GIF_METHOD if GIF_METHOD in data.curves else next(iter(data.curves))
    color = data.color(method)
    levels = data.levels
    names = list(data.dense.layers)
    sizes = np.array([data.dense.layers[n][1] for n in names])
    # Kept fraction per layer at every frame; a level this method skipped shows its last one below.
    own = [float(s) for s in data.curves[method].levels]
    shown = [max((s for s in own if level_key(s) <= level_key(level)), default=0.0) for level in levels]
    kept = []
    for level in shown:
        layers = _layers(data.at(method, level))
        kept.append(100 * (1 - np.array([layers[n][0] for n in names]) / sizes))

    fig = Figure(figsize=(9, 4.5), dpi=80)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.35]})
    fig.subplots_adjust(left=0.16, right=0.98, bottom=0.12, top=0.84, wspace=0.22)

    y = np.arange(len(names))
    left.barh(y, np.full(len(names), 100.0), height=0.8, color="0.88", lw=0)
    bars = left.barh(y, kept[0], height=0.8, color=color, lw=0)
    step = max(1, math.ceil(len(names) / 24))  # at most ~24 readable labels at this size
    left.set_yticks(y[::step], [_short(n) for n in names[::step]], fontsize=7 if step == 1 else 6)
    left.set_ylim(len(names) - 0.5, -0.5)  # network order, input at the top
    left.set_xlim(0, 100)
    left.set_xlabel("weights kept (%)", fontsize=9)
    left.tick_params(axis="x", labelsize=8)
    left.set_title(f"{method}: weights kept per layer", fontsize=9)

    _frame_axes(right, data, legend=False)
    right.xaxis.label.set_size(8)
    right.yaxis.label.set_size(9)
    right.tick_params(labelsize=8)
    marker = right.axvline(0, color="0.2", lw=0.8, ls=":")
    lines, currents = {}, {}
    for m in data.curves:
        lines[m], = right.plot([], [], "-o", color=data.color(m), ms=3, lw=1.4, label=m)
        currents[m], = right.plot([], [], "o", color=data.color(m), ms=8, mec="black", mew=0.8)
    # Above the axes: curves grow into every corner as the frames go on.
    right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(data.curves)),
                 fontsize=8, frameon=False, handlelength=1.5, columnspacing=1.2)
    title = fig.suptitle("", fontsize=9.5)
    xy = {m: _from_dense(data, c)[:3] for m, c in data.curves.items()}

    def draw(i: int):
        level = levels[i]
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
        here = "" if level_key(shown[i]) == level_key(level) else f" (its last level {_pct(shown[i])})"
        title.set_text(f"{data.model}, target sparsity {_pct(level)}: {method}{here} removed "
                       f"{removed:.1f}% of prunable weights, top-1 {top1:.1f}% "
                       f"(dense {data.dense.top1:.1f}%)")
        return [*bars, *lines.values(), *currents.values(), marker, title]

    anim = FuncAnimation(fig, draw, frames=len(levels), blit=False, repeat=False, cache_frame_data=False)
    anim.save(path, writer=PillowWriter(fps=4), dpi=80)


# ---------------------------------------------------------------- Markdown


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _bytes(n: float) -> str:
    return f"{n / 2**20:.2f} MiB ({n:,.0f} B)"


def _markdown(data: _Run, files: dict[str, Path]) -> str:
    dense = data.dense
    first = next(iter(data.answers.values()))
    budget, n_boot = first.budget, first.n_boot
    lines = [f"# Pruning report: {data.model}, {data.n_images:,} test images", ""]

    # The answer first.
    lines += ["| method | largest sparsity within budget | 95% interval | top-1 there | dense top-1 "
              "| drop (points) | measured sparsity |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for m, a in data.answers.items():
        lines.append(f"| {m} | {_pct(a.sparsity)} | {_pct(a.ci_low)} – {_pct(a.ci_high)} | {a.top1:.1f}% "
                     f"| {a.dense_top1:.1f}% | {a.drop:.1f} | {_pct(a.measured_sparsity)} |")
    interval = (f"The 95% interval is the 2.5–97.5 percentile range of the same answer over {n_boot:,} "
                f"paired bootstrap replicates of the {data.n_images:,} test images: each replicate "
                f"resamples the images once and rescores the dense model and every level on those same "
                f"images, so it shows how much the answer depends on which test images were drawn."
                if n_boot else "No bootstrap was run (n_boot = 0), so the interval is the answer itself.")
    several = [f"{m} ({max(data.seeds(m, s) for s in c.levels)} seeds)"
               for m, c in data.curves.items() if max(data.seeds(m, s) for s in c.levels) > 1]
    lines += ["", f"Budget: top-1 may fall at most {budget:g} point{'s' if budget != 1 else ''} below the "
              f"dense model's {dense.top1:.1f}%. The answer is the largest swept target sparsity such that "
              f"it and every lower level stay within the budget; it moves in steps of the swept grid. "
              + interval
              + (f" Methods with several seeds are averaged per image first: {', '.join(several)}."
                 if several else "")]

    lines += ["", "## Accuracy against sparsity", "",
              f"![top-1 against sparsity]({files['plot_png'].name}) "
              f"([SVG]({files['plot_svg'].name}), [CSV of every point]({files['csv'].name}))"]
    if "gif" in files:
        method = GIF_METHOD if GIF_METHOD in data.curves else next(iter(data.curves))
        lines += ["", "## Pruning, level by level", "",
                  f"Left: the fraction of weights {method} keeps in each prunable layer; right: the "
                  f"accuracy curves drawn up to the current level.", "",
                  f"![weights vanishing layer by layer]({files['gif'].name})"]

    if "savings_png" in files:
        lines += ["", "## What the pruned models really save", "",
                  f"![top-1 against MACs, latency and file size]({files['savings_png'].name}) "
                  f"([SVG]({files['savings_svg'].name}))", "", *_savings_table(data)]
    lines += ["", "## Per-layer sparsity at each answer", "", *_layer_table(data)]
    lines += ["", "## Top-1 at every level", "", *_accuracy_table(data)]
    lines += ["", "## Sizes at each answer", "", *_size_table(data)]
    lines += ["", "## Run", "", *_facts(data)]
    return "\n".join(lines) + "\n"


def _latency_setup(data: _Run) -> str:
    """How the latencies were taken: threads, runtime (stores before the choice ran torch), and
    whether side by side (`prunelab retime`) or each when its point finished."""
    threads = data.dense.latency_threads
    runtime = {"torch": "eager PyTorch"}.get(data.dense.latency_runtime or "torch",
                                             data.dense.latency_runtime)
    timed = {p.key for p in data.points if p.latency_b1 is not None}
    when = ("all timed side by side by prunelab retime" if timed <= data.retimed else
            "each timed when its point finished; 'prunelab retime RUN' times them side by side")
    return f"{threads} thread{'s' if threads != 1 else ''}, {runtime}, {when}"


def _savings_table(data: _Run) -> list[str]:
    dense = data.dense
    latency = dense.latency_b1 is not None
    head = ("| model | top-1 | MACs (counted, as run) | effective MACs (theory) | parameters | "
            "file (measured) |" + (" latency b1 (measured) | latency b64 (measured) |" if latency else ""))
    rows = [head, "|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if latency else "")]

    def row(label: str, group: list[Point]) -> str:
        m, e = _mean(group, "macs"), _mean(group, "effective_macs")
        f, params = _mean(group, "file_bytes"), float(np.mean([p.total_params for p in group]))
        cells = [label, f"{np.mean([p.top1 for p in group]):.1f}%",
                 f"{m / 1e6:,.1f} M ({dense.macs / m:.2f}x fewer)" if m else "–",
                 f"{e / 1e6:,.1f} M ({dense.macs / e:.2f}x fewer)" if e else "–",
                 f"{params:,.0f}", f"{_bytes(f)} [{group[0].file_format}]" if f else "–"]
        if latency:
            for field, base in (("latency_b1", dense.latency_b1), ("latency_b64", dense.latency_b64)):
                t = _mean(group, field)
                cells.append(f"{1e3 * t:,.2f} ms ({base / t:.2f}x faster)" if t else "–")
        return "| " + " | ".join(cells) + " |"

    rows.append(row("dense", [dense]))
    for m, curve in data.curves.items():
        for level in curve.levels:
            group = data.at(m, float(level))
            star = " (answer)" if level_key(data.answers[m].sparsity) == level_key(level) else ""
            rows.append(row(f"{m} at {_pct(level)}{star}", group))
    setup = f" ({_latency_setup(data)})" if latency else ""
    return ["Every swept point (seeds averaged). MACs as run are counted by torch's FlopCounterMode on "
            "the model that actually runs (dense kernels multiply the zeros of a mask too); effective "
            "MACs are theory: each layer's MACs scaled by its weight density, a saving only a sparse kernel "
            "could collect. Channel methods run a physically smaller model, so the two agree. Files are "
            "the exported model on disk (sparse: bitmask + nonzero values, compressed; structured: "
            f"safetensors + spec). Latency: median of repeated forwards after warm-up{setup}.",
            "", *rows]


def _layer_table(data: _Run) -> list[str]:
    at = {m: _layers(data.at(m, a.sparsity)) for m, a in data.answers.items()}
    head = "| layer | size |" + "".join(f" {m} at {_pct(a.sparsity)} |" for m, a in data.answers.items())
    rows = [head, "|---|---:|" + "---:|" * len(at)]
    for name, (_, size) in data.dense.layers.items():
        cells = "".join(f" {_pct(layers[name][0] / size)} ({layers[name][0]:,.0f}) |"
                        for layers in at.values())
        rows.append(f"| `{name}` | {size:,} |{cells}")
    total = data.dense.prunable_params
    cells = "".join(f" {_pct(sum(z for z, _ in layers.values()) / total)} "
                    f"({sum(z for z, _ in layers.values()):,.0f}) |" for layers in at.values())
    rows.append(f"| **all prunable** | {total:,} |{cells}")
    return ["Each cell: sparsity of the layer (zeros); zeros are averaged over seeds where a method "
            "has several.", "", *rows]


def _accuracy_table(data: _Run) -> list[str]:
    rows = ["| target sparsity |" + "".join(f" {m} |" for m in data.curves),
            "|---:|" + "---:|" * len(data.curves)]
    for level in data.levels:
        cells = []
        for m in data.curves:
            group = data.groups.get((m, level_key(level)))
            if not group:
                cells.append(" – |")
                continue
            top1 = [p.top1 for p in group]
            text = f"{np.mean(top1):.1f}" + (f" ± {np.std(top1):.1f}" if len(top1) > 1 else "")
            if level_key(data.answers[m].sparsity) == level_key(level):
                text = f"**{text}**"
            cells.append(f" {text} |")
        rows.append(f"| {_pct(level)} |" + "".join(cells))
    return [f"Top-1 (%) at each swept target sparsity; dense {data.dense.top1:.1f}%. Bold: each method's "
            f"answer. ± is the standard deviation over seeds.", "", *rows]


def _size_table(data: _Run) -> list[str]:
    dense_bytes = data.dense.dense_bytes
    rows = ["| model | sparsity (measured) | dense bytes | bitmask + nonzero values | vs dense |",
            "|---|---:|---:|---:|---:|",
            f"| dense | 0.0% | {_bytes(dense_bytes)} | – | 100.0% |"]
    for m, a in data.answers.items():
        group = data.at(m, a.sparsity)
        sparse = float(np.mean([p.sparse_bytes for p in group]))
        rows.append(f"| {m} at {_pct(a.sparsity)} | {_pct(a.measured_sparsity)} | {_bytes(dense_bytes)} "
                    f"| {_bytes(sparse)} | {_pct(sparse / dense_bytes)} |")
    return ["Sizes are computed, bitmask + nonzero values: one bit per prunable weight plus the values "
            "of its nonzero weights, every other tensor stored densely. This is theory for an encoding, "
            "not a file on disk, and zeros stored this way do not make dense kernels any faster. Dense "
            "bytes: every state-dict tensor stored densely.", "", *rows]


def _facts(data: _Run) -> list[str]:
    fp, cfg, dense = data.fingerprint, data.config, data.dense

    def short(digest) -> str:
        return f"`{str(digest)[:12]}`" if digest else "unknown"

    facts = [
        ("model", f"{data.model}"),
        ("test images", f"{data.n_images:,} ({fp.get('data', cfg.get('data', 'unknown'))}, "
                        f"sha256 {short(fp.get('test_sha256'))})"),
        ("weights sha256", short(fp.get("weights_sha256"))),
        ("checkpoint", f"`{cfg['checkpoint']}`" if cfg.get("checkpoint") else "unknown"),
        ("prune_classifier", str(fp.get("prune_classifier", cfg.get("prune_classifier", "unknown")))),
        ("layer_cap", "none" if fp.get("layer_cap", cfg.get("layer_cap")) is None
         else _pct(fp.get("layer_cap", cfg.get("layer_cap")))),
        ("parameters", f"{dense.total_params:,} in all, {dense.prunable_params:,} prunable "
                       f"in {len(dense.layers)} layers"),
        ("methods", ", ".join(data.curves)),
        ("levels", f"{len(data.levels)} ({', '.join(_pct(s) for s in data.levels)})"),
        ("seeds", ", ".join(str(s) for s in cfg.get("seeds", ())) or "unknown"),
        ("points", f"{len(data.points)} (dense baseline included)"),
        ("prunelab", str(data.version or "unknown")),
    ]
    rc = fp.get("recovery") or {}
    if rc and any("+" in m for m in data.curves):
        how = (f"constant lr {rc.get('lr')}" if rc.get("retrain") == "finetune" else
               f"lr rewinding, cosine from {rc.get('lr')} (from epoch {rc.get('rewind_epoch', 0)})")
        kd = (f"; distillation from the dense network, weight {rc['distill']}, T {rc['temperature']}"
              if rc.get("distill") else "")
        facts.append(("retraining", f"{rc.get('epochs')} epoch(s) per level or round, {how}, batch "
                                    f"{rc.get('batch_size')}{kd}; batch-norm recalibration on "
                                    f"{rc.get('bn_batches')} batches"))
        facts.append(("training images", f"`{cfg.get('train_data') or cfg.get('data', 'unknown')}`"
                      + (f" (sha256 {short(fp['train_sha256'])})" if fp.get("train_sha256") else "")))
    return [f"- {k}: {v}" for k, v in facts]
