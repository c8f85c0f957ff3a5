"""Every stored point timed again, side by side, so the latencies of one run can be compared."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import PrunelabError
from ..measure import check_runtime, check_threads, latencies
from .point import LATENCY_RUNS
from .rebuild import point_model
from .store import RETIMED, Point, Store
from .workbench import pick_device


def retime(run: str | Path, runtime: str = "torch", threads: int = 1, device: str = "cpu") -> list[Point]:
    """Time every stored point's model again, all side by side (`latencies`: round-robin), and store
    the new latencies in place of the sweep's.

    A sweep times each point when it finishes, so the points of one run are timed minutes or hours
    apart under whatever else the machine was doing; their ratios mislead on a shared machine.
    Side-by-side timing puts the same load on every point.

    Args:
        run: a sweep's run folder.
        runtime: 'torch' (eager) or 'onnxruntime'.
        threads: intra-op CPU threads.
        device: where eager models run ('cpu' or 'cuda').

    Returns:
        every stored point, with its new latencies.
    """
    check_runtime(runtime)
    check_threads(threads)
    target = pick_device(device)
    store = Store.open(run)
    try:
        points = store.points()
    finally:
        store.close()
    if not points:
        raise PrunelabError(f"run {run} has no stored points to time")
    models, shape = {}, None
    for p in points:
        pruned, _, shape = point_model(run, p.method, p.target_sparsity, p.seed)
        models[str(p.key)] = pruned.model.to(target).eval()
    timed = {batch: latencies(models, shape, batch, threads, warmup, repeats, runtime)
             for batch, warmup, repeats in LATENCY_RUNS}
    out = []
    for p in points:
        t1, t64 = timed[1][str(p.key)], timed[64][str(p.key)]
        out.append(replace(p, latency_b1=t1.median, latency_b64=t64.median, latency_threads=t1.threads,
                           latency_runtime=runtime))
    store = Store.open(run)
    try:
        for p in out:
            store.add(p)
        store.set_meta(RETIMED, sorted(list(p.key) for p in out))
    finally:
        store.close()
    return out
