"""What a report says, worked out once from the RunView: the answer, the tables, the facts.
markdown.py and html.py only lay it out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..experiment.analysis import pareto, sized, smallest_within
from ..experiment.store import level_key
from .gif import GIF_METHOD
from .read import Point, RunView, latency_setup, layer_zeros, mean_of, nbytes, pct


@dataclass(frozen=True)
class Table:
    """Rows of text cells; the first `left` columns are text, the rest numbers. Cells (and the
    report's sentences) hold two inline marks only, **strong** and `code`, each renderer drawing
    them its own way."""

    head: list[str]
    rows: list[list[str]]
    left: int = 1


def title(data: RunView) -> str:
    return f"Pruning report: {data.model}, {data.n_images:,} test images"


def answer_table(data: RunView) -> Table:
    """Per method: the largest share within budget, with its interval."""
    head = ["method", "largest sparsity within budget", "95% interval", "top-1 there", "dense top-1",
            "drop (points)", "measured sparsity"]
    rows = []
    for m, a in data.answers.items():
        if not a.found:
            rows.append([m, "none: its lowest level misses the budget", "–", "–", f"{a.dense_top1:.1f}%",
                         "–", "–"])
            continue
        rows.append([m, pct(a.sparsity), f"{pct(a.ci_low)} – {pct(a.ci_high)}", f"{a.top1:.1f}%",
                     f"{a.dense_top1:.1f}%", f"{a.drop:.1f}", pct(a.measured_sparsity)])
    return Table(head, rows)


def budget_note(data: RunView) -> str:
    """What the budget and the interval mean, under the answer."""
    first = next(iter(data.answers.values()))
    budget, n_boot, dense = first.budget, first.n_boot, data.dense
    interval = (f"The 95% interval is the 2.5–97.5 percentile range of the same answer over {n_boot:,} "
                f"paired bootstrap replicates of the {data.n_images:,} test images: each replicate "
                f"resamples the images once and rescores the dense model and every level on those same "
                f"images, so it shows how much the answer depends on which test images were drawn."
                if n_boot else "No bootstrap was run (n_boot = 0), so the interval is the answer itself.")
    several = [f"{m} ({max(data.seeds(m, s) for s in c.levels)} seeds)"
               for m, c in data.curves.items() if max(data.seeds(m, s) for s in c.levels) > 1]
    return (f"Budget: top-1 may fall at most {budget:g} point{'s' if budget != 1 else ''} below the "
            f"dense model's {dense.top1:.1f}%. The answer is the largest swept target sparsity such that "
            f"it and every lower level stay within the budget; it moves in steps of the swept grid. "
            + interval
            + (f" Methods with several seeds are averaged per image first: {', '.join(several)}."
               if several else ""))


def gif_caption(data: RunView) -> str:
    method = GIF_METHOD if GIF_METHOD in data.curves else next(iter(data.curves))
    return (f"Left: the fraction of weights {method} keeps in each prunable layer; right: the "
            f"accuracy curves drawn up to the current level.")


def times(base: float, value: float, more: str, less: str) -> str:
    """'2.50x fewer' for a value below its dense `base`, '1.20x more' above, 'same as dense' when equal."""
    if np.isclose(value, base, rtol=1e-9, atol=0):
        return "same as dense"
    return f"{base / value:.2f}x {more}" if value < base else f"{value / base:.2f}x {less}"


def savings(data: RunView) -> tuple[str, Table]:
    """Every swept point (seeds averaged): MACs as run and in theory, parameters, file, latency."""
    dense = data.dense
    latency = dense.latency_b1 is not None
    head = ["model", "top-1", "MACs (counted, as run)", "effective MACs (theory)", "parameters",
            "file (measured)"] + (["latency b1 (measured)", "latency b64 (measured)"] if latency else [])

    def row(label: str, group: list[Point]) -> list[str]:
        m, e = mean_of(group, "macs"), mean_of(group, "effective_macs")
        f, params = mean_of(group, "file_bytes"), float(np.mean([p.total_params for p in group]))
        gone = mean_of(group, "nonzero_params") == 0  # nothing prunable left: the network computes
        # no function of its input, so a ratio of MACs against (almost) nothing says nothing
        effective = "all prunable weights removed" if gone or not e else times(dense.macs, e, "fewer", "more")
        cells = [label, f"{np.mean([p.top1 for p in group]):.1f}%",
                 f"{m / 1e6:,.1f} M ({times(dense.macs, m, 'fewer', 'more')})" if m else "–",
                 f"{e / 1e6:,.1f} M ({effective})" if e is not None else "–",
                 f"{params:,.0f}", f"{nbytes(f)} [{group[0].file_format}]" if f else "–"]
        if latency:
            for field, base in (("latency_b1", dense.latency_b1), ("latency_b64", dense.latency_b64)):
                t = mean_of(group, field)
                cells.append(f"{1e3 * t:,.2f} ms ({times(base, t, 'faster', 'slower')})" if t else "–")
        return cells

    rows = [row("dense", [dense])]
    for m, curve in data.curves.items():
        for level in curve.levels:
            star = " (answer)" if is_answer(data, m, level) else ""
            rows.append(row(f"{m} at {pct(level)}{star}", data.at(m, float(level))))
    setup = f" ({latency_setup(data)})" if latency else ""
    note = ("Every swept point (seeds averaged). MACs as run are counted by torch's FlopCounterMode on "
            "the model that actually runs (dense kernels multiply the zeros of a mask too); effective "
            "MACs are theory: each layer's MACs scaled by its weight density, a saving only a sparse kernel "
            "could collect. Channel methods run a physically smaller model, so the two agree. Files are "
            "the exported model on disk (sparse: bitmask + nonzero values, compressed; structured: "
            f"safetensors + spec). Latency: median of repeated forwards after warm-up{setup}.")
    return note, Table(head, rows)


def is_answer(data: RunView, method: str, level: float) -> bool:
    a = data.found.get(method)
    return a is not None and level_key(a.sparsity) == level_key(level)


def memory(data: RunView, budget: float) -> tuple[str, str, Table]:
    """(the smallest file within the budget, what the table holds, the frontier's points)."""
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
    rows = [[f"{s.method} at {pct(s.level)}", f"{s.bits or 32}", f"{s.top1:.1f}%", nbytes(s.file_bytes),
             f"{dense.dense_bytes / s.file_bytes:.1f}x"] for s in pareto(items)]
    note = ("Every point whose file was written and measured (quantized points: the file "
            "read back is the network evaluated). The frontier keeps the points no other beats on both "
            "size and top-1.")
    return answer, note, Table(["on the frontier", "bits", "top-1", "file (measured)", "smaller than dense"],
                               rows)


def layers(data: RunView) -> tuple[str, Table]:
    """Per-layer sparsity (zeros) at each method's answer."""
    at = {m: layer_zeros(data.at(m, a.sparsity)) for m, a in data.found.items()}
    head = ["layer", "size"] + [f"{m} at {pct(a.sparsity)}" for m, a in data.found.items()]
    rows = [[f"`{name}`", f"{size:,}"] + [f"{pct(zeros[name][0] / size)} ({zeros[name][0]:,.0f})"
                                          for zeros in at.values()]
            for name, (_, size) in data.dense.layers.items()]
    total = data.dense.prunable_params
    gone = [sum(z for z, _ in zeros.values()) for zeros in at.values()]
    rows.append(["**all prunable**", f"{total:,}"] + [f"{pct(z / total)} ({z:,.0f})" for z in gone])
    return ("Each cell: sparsity of the layer (zeros); zeros are averaged over seeds where a method "
            "has several.", Table(head, rows))


def accuracy(data: RunView) -> tuple[str, Table]:
    """Top-1 at every swept level, per method; each answer in bold."""
    rows = []
    for level in data.levels:
        cells = [pct(level)]
        for m in data.curves:
            group = data.groups.get((m, level_key(level)))
            if not group:
                cells.append("–")
                continue
            top1 = [p.top1 for p in group]
            text = f"{np.mean(top1):.1f}" + (f" ± {np.std(top1):.1f}" if len(top1) > 1 else "")
            cells.append(f"**{text}**" if is_answer(data, m, level) else text)
        rows.append(cells)
    return (f"Top-1 (%) at each swept target sparsity; dense {data.dense.top1:.1f}%. Bold: each method's "
            f"answer. ± is the standard deviation over seeds.",
            Table(["target sparsity", *data.curves], rows, left=0))


def sizes(data: RunView) -> tuple[str, Table]:
    """Dense bytes against the bitmask + nonzero values encoding at each answer."""
    dense_bytes = data.dense.dense_bytes
    rows = [["dense", "0.0%", nbytes(dense_bytes), "–", "100.0%"]]
    for m, a in data.found.items():
        sparse = float(np.mean([p.sparse_bytes for p in data.at(m, a.sparsity)]))
        rows.append([f"{m} at {pct(a.sparsity)}", pct(a.measured_sparsity), nbytes(dense_bytes),
                     nbytes(sparse), pct(sparse / dense_bytes)])
    return ("Sizes are computed, bitmask + nonzero values: one bit per prunable weight plus the values "
            "of its nonzero weights, every other tensor stored densely. This is theory for an encoding, "
            "not a file on disk, and zeros stored this way do not make dense kernels any faster. Dense "
            "bytes: every state-dict tensor stored densely.",
            Table(["model", "sparsity (measured)", "dense bytes", "bitmask + nonzero values", "vs dense"],
                  rows))
