"""The report's read-model: everything a report shows, read once from the store (no model, no data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PrunelabError
from ..experiment.analysis import Answer, Curve, answer, split
from ..experiment.fingerprint import upgrade
from ..experiment.store import DENSE, RETIMED, Point, Store, level_key


@dataclass(frozen=True)
class RunView:
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
    recipes: dict[str, dict] = field(default_factory=dict)  # method -> what its points read (fingerprint.py)

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

    @property
    def found(self) -> dict[str, Answer]:
        """The answers that name a level (a quantized method may keep none within the budget)."""
        return {m: a for m, a in self.answers.items() if a.found}

    def seeds(self, method: str, level: float) -> int:
        return len(self.groups.get((method, level_key(level)), ()))


def read_run(run: Path, budget: float, n_boot: int) -> RunView:
    store = Store.open(run)
    try:
        points = store.points()
        fingerprint = store.meta("fingerprint") or {}
        config = store.meta("config") or {}
        version = store.meta("prunelab_version")
        retimed = {tuple(k) for k in store.meta(RETIMED) or ()}
        recipes = store.recipes(upgrade)
    finally:
        store.close()
    dense, curves = split(points)
    if not curves:
        raise PrunelabError(f"{run} holds only the dense baseline, no pruned points yet; "
                            f"run 'prunelab sweep --out {run}' to sweep the methods")
    swept = list(dict.fromkeys(m for m in (*recipes, *config.get("methods", ())) if m in curves))
    order = swept + sorted(set(curves) - set(swept))  # in the order they joined the run
    curves = {m: curves[m] for m in order}
    answers = {m: answer(dense, c, budget, n_boot) for m, c in curves.items()}
    groups: dict[tuple[str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.method, level_key(p.target_sparsity)), []).append(p)
    dense_first = sorted(points, key=lambda p: p.method != DENSE)  # stable: store order otherwise
    return RunView(dense_first, dense, curves, answers, groups, fingerprint, config, version, retimed,
                   recipes)


def layer_zeros(points: list[Point]) -> dict[str, tuple[float, int]]:
    """Per-layer (zeros, size), zeros averaged over the points (seeds); network order."""
    names = list(points[0].layers)
    return {n: (float(np.mean([p.layers[n][0] for p in points])), points[0].layers[n][1]) for n in names}


def from_dense(data: RunView, curve: Curve) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(levels, measured sparsity %, top-1 %, std) of a curve, starting at the dense model when
    sparsity 0 was not swept (it is the dense model, as the answer counts it; not for a quantized
    curve, whose networks are all quantized)."""
    levels, x, top1, std = curve.levels, 100 * curve.sparsity, curve.top1, curve.top1_std
    if level_key(levels[0]) != 0 and not curve.quantized:
        levels, x = np.r_[0.0, levels], np.r_[0.0, x]
        top1, std = np.r_[data.dense.top1, top1], np.r_[0.0, std]
    return levels, x, top1, std


def pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def nbytes(n: float) -> str:
    return f"{n / 2**20:.2f} MiB ({n:,.0f} B)"


def mean_of(points: list[Point], name: str) -> float | None:
    values = [getattr(p, name) for p in points]
    return None if any(v is None for v in values) else float(np.mean(values))


def latency_setup(data: RunView) -> str:
    """How the latencies were taken: threads, runtime (stores before the choice ran torch), and
    whether side by side (`prunelab retime`) or each when its point finished."""
    threads = data.dense.latency_threads
    runtime = {"torch": "eager PyTorch"}.get(data.dense.latency_runtime or "torch",
                                             data.dense.latency_runtime)
    timed = {p.key for p in data.points if p.latency_b1 is not None}
    when = ("all timed side by side by prunelab retime" if timed <= data.retimed else
            "each timed when its point finished; 'prunelab retime RUN' times them side by side")
    return f"{threads} thread{'s' if threads != 1 else ''}, {runtime}, {when}"
