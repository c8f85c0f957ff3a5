"""report.md: the answer first, then the plots, savings, per-layer sparsity, accuracy, sizes, the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..experiment.analysis import pareto, sized, smallest_within
from ..experiment.store import level_key
from .gif import GIF_METHOD
from .read import Point, RunView, latency_setup, layer_zeros, mean_of, nbytes, pct


def markdown(data: RunView, files: dict[str, Path]) -> str:
    dense = data.dense
    first = next(iter(data.answers.values()))
    budget, n_boot = first.budget, first.n_boot
    lines = [f"# Pruning report: {data.model}, {data.n_images:,} test images", ""]

    # The answer first.
    lines += ["| method | largest sparsity within budget | 95% interval | top-1 there | dense top-1 "
              "| drop (points) | measured sparsity |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for m, a in data.answers.items():
        if not a.found:
            lines.append(f"| {m} | none: its lowest level misses the budget | – | – | {a.dense_top1:.1f}% "
                         f"| – | – |")
            continue
        lines.append(f"| {m} | {pct(a.sparsity)} | {pct(a.ci_low)} – {pct(a.ci_high)} | {a.top1:.1f}% "
                     f"| {a.dense_top1:.1f}% | {a.drop:.1f} | {pct(a.measured_sparsity)} |")
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
    if "memory_png" in files:
        lines += ["", "## Memory: top-1 against the file on disk", "",
                  f"![top-1 against file size, Pareto frontier]({files['memory_png'].name}) "
                  f"([SVG]({files['memory_svg'].name}))", "", *_memory(data, budget)]
    lines += ["", "## Per-layer sparsity at each answer", "", *_layer_table(data)]
    lines += ["", "## Top-1 at every level", "", *_accuracy_table(data)]
    lines += ["", "## Sizes at each answer", "", *_size_table(data)]
    lines += ["", "## Run", "", *_facts(data)]
    return "\n".join(lines) + "\n"


def _savings_table(data: RunView) -> list[str]:
    dense = data.dense
    latency = dense.latency_b1 is not None
    head = ("| model | top-1 | MACs (counted, as run) | effective MACs (theory) | parameters | "
            "file (measured) |" + (" latency b1 (measured) | latency b64 (measured) |" if latency else ""))
    rows = [head, "|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if latency else "")]

    def row(label: str, group: list[Point]) -> str:
        m, e = mean_of(group, "macs"), mean_of(group, "effective_macs")
        f, params = mean_of(group, "file_bytes"), float(np.mean([p.total_params for p in group]))
        cells = [label, f"{np.mean([p.top1 for p in group]):.1f}%",
                 f"{m / 1e6:,.1f} M ({dense.macs / m:.2f}x fewer)" if m else "–",
                 f"{e / 1e6:,.1f} M ({dense.macs / e:.2f}x fewer)" if e else "–",
                 f"{params:,.0f}", f"{nbytes(f)} [{group[0].file_format}]" if f else "–"]
        if latency:
            for field, base in (("latency_b1", dense.latency_b1), ("latency_b64", dense.latency_b64)):
                t = mean_of(group, field)
                cells.append(f"{1e3 * t:,.2f} ms ({base / t:.2f}x faster)" if t else "–")
        return "| " + " | ".join(cells) + " |"

    rows.append(row("dense", [dense]))
    for m, curve in data.curves.items():
        for level in curve.levels:
            group = data.at(m, float(level))
            star = " (answer)" if _is_answer(data, m, level) else ""
            rows.append(row(f"{m} at {pct(level)}{star}", group))
    setup = f" ({latency_setup(data)})" if latency else ""
    return ["Every swept point (seeds averaged). MACs as run are counted by torch's FlopCounterMode on "
            "the model that actually runs (dense kernels multiply the zeros of a mask too); effective "
            "MACs are theory: each layer's MACs scaled by its weight density, a saving only a sparse kernel "
            "could collect. Channel methods run a physically smaller model, so the two agree. Files are "
            "the exported model on disk (sparse: bitmask + nonzero values, compressed; structured: "
            f"safetensors + spec). Latency: median of repeated forwards after warm-up{setup}.",
            "", *rows]


def _is_answer(data: RunView, method: str, level: float) -> bool:
    a = data.found.get(method)
    return a is not None and level_key(a.sparsity) == level_key(level)


def _memory(data: RunView, budget: float) -> list[str]:
    """The smallest file within the budget, then the frontier's points."""
    items = sized(data.points)
    dense, best = data.dense, smallest_within(items, data.dense.top1, budget)
    ref = f"the dense float32 tensors ({nbytes(dense.dense_bytes)})"
    if best is None:
        answer = f"No measured file keeps top-1 within {budget:g} point of dense {dense.top1:.1f}%."
    else:
        answer = (f"**The smallest file within the budget: {best.method} at {pct(best.level)}, "
                  f"{nbytes(best.file_bytes)}, {dense.dense_bytes / best.file_bytes:.1f}x smaller than "
                  f"{ref}**, "
                  f"top-1 {best.top1:.1f}% (dense {dense.top1:.1f}%, budget {budget:g} pt).")
    rows = ["| on the frontier | bits | top-1 | file (measured) | smaller than dense |",
            "|---|---:|---:|---:|---:|"]
    for s in pareto(items):
        rows.append(f"| {s.method} at {pct(s.level)} | {s.bits or 32} | {s.top1:.1f}% "
                    f"| {nbytes(s.file_bytes)} | {dense.dense_bytes / s.file_bytes:.1f}x |")
    return [answer, "", "Every point whose file was written and measured (quantized points: the file "
            "read back is the network evaluated). The frontier keeps the points no other beats on both "
            "size and top-1.", "", *rows]


def _layer_table(data: RunView) -> list[str]:
    at = {m: layer_zeros(data.at(m, a.sparsity)) for m, a in data.found.items()}
    head = "| layer | size |" + "".join(f" {m} at {pct(a.sparsity)} |" for m, a in data.found.items())
    rows = [head, "|---|---:|" + "---:|" * len(at)]
    for name, (_, size) in data.dense.layers.items():
        cells = "".join(f" {pct(layers[name][0] / size)} ({layers[name][0]:,.0f}) |"
                        for layers in at.values())
        rows.append(f"| `{name}` | {size:,} |{cells}")
    total = data.dense.prunable_params
    cells = "".join(f" {pct(sum(z for z, _ in layers.values()) / total)} "
                    f"({sum(z for z, _ in layers.values()):,.0f}) |" for layers in at.values())
    rows.append(f"| **all prunable** | {total:,} |{cells}")
    return ["Each cell: sparsity of the layer (zeros); zeros are averaged over seeds where a method "
            "has several.", "", *rows]


def _accuracy_table(data: RunView) -> list[str]:
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
            if _is_answer(data, m, level):
                text = f"**{text}**"
            cells.append(f" {text} |")
        rows.append(f"| {pct(level)} |" + "".join(cells))
    return [f"Top-1 (%) at each swept target sparsity; dense {data.dense.top1:.1f}%. Bold: each method's "
            f"answer. ± is the standard deviation over seeds.", "", *rows]


def _size_table(data: RunView) -> list[str]:
    dense_bytes = data.dense.dense_bytes
    rows = ["| model | sparsity (measured) | dense bytes | bitmask + nonzero values | vs dense |",
            "|---|---:|---:|---:|---:|",
            f"| dense | 0.0% | {nbytes(dense_bytes)} | – | 100.0% |"]
    for m, a in data.found.items():
        group = data.at(m, a.sparsity)
        sparse = float(np.mean([p.sparse_bytes for p in group]))
        rows.append(f"| {m} at {pct(a.sparsity)} | {pct(a.measured_sparsity)} | {nbytes(dense_bytes)} "
                    f"| {nbytes(sparse)} | {pct(sparse / dense_bytes)} |")
    return ["Sizes are computed, bitmask + nonzero values: one bit per prunable weight plus the values "
            "of its nonzero weights, every other tensor stored densely. This is theory for an encoding, "
            "not a file on disk, and zeros stored this way do not make dense kernels any faster. Dense "
            "bytes: every state-dict tensor stored densely.", "", *rows]


def _facts(data: RunView) -> list[str]:
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
         else pct(fp.get("layer_cap", cfg.get("layer_cap")))),
        ("parameters", f"{dense.total_params:,} in all, {dense.prunable_params:,} prunable "
                       f"in {len(dense.layers)} layers"),
        ("methods", ", ".join(data.curves)),
        ("levels", f"{len(data.levels)} ({', '.join(pct(s) for s in data.levels)})"),
        ("seeds", ", ".join(str(s) for s in cfg.get("seeds", ())) or "unknown"),
        ("points", f"{len(data.points)} (dense baseline included)"),
        ("prunelab", str(data.version or "unknown")),
    ]
    rc = fp.get("recovery") or {}
    if rc and any(_retrained(m) for m in data.curves):
        how = _retraining(rc)
        kd = (f"; distillation from the dense network, weight {rc['distill']}, T {rc['temperature']}"
              if rc.get("distill") else "")
        facts.append(("retraining", f"{rc.get('epochs')} epoch(s) per level or round, {how}, batch "
                                    f"{rc.get('batch_size')}{kd}; batch-norm recalibration on "
                                    f"{rc.get('bn_batches')} batches"))
        facts.append(("training images", f"`{cfg.get('train_data') or cfg.get('data', 'unknown')}`"
                      + (f" (sha256 {short(fp['train_sha256'])})" if fp.get("train_sha256") else "")))
    return [f"- {k}: {v}" for k, v in facts]


def _retraining(rc: dict) -> str:
    """How the stored run's learning rate ran, in its mode's own words."""
    from ..errors import PrunelabError
    from ..recovery import RETRAIN_MODES

    try:
        return RETRAIN_MODES.get(rc.get("retrain", "finetune")).describe(rc)
    except PrunelabError:  # a mode of another prunelab version
        return f"retraining mode '{rc.get('retrain')}', lr {rc.get('lr')}"


def _retrained(method: str) -> bool:
    """A stored method was recovered by something other than nothing (a method of another
    prunelab version, or a sensitivity point, is not)."""
    from ..errors import PrunelabError
    from ..experiment.spec import MethodSpec

    try:
        spec = MethodSpec.parse(method)
    except PrunelabError:
        return False
    return not spec.recovery.one_shot
