"""One point: prune and recover (`make_point`), then measure (`measure`): the unit a sweep, a
sensitivity profile and an export all compute."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from torch import nn

from ..io.formats import FORMATS, get_format
from ..measure import count, dense_bytes, latency, macs, sparse_bytes, weight_density
from ..pruning import Pruned
from ..quant import quantize_model
from ..quant.model import dequantized
from ..quant.tune import hold_codes, release_codes
from ..recovery.retrain import recalibrate_bn, retrain
from .rebuild import point_model
from .runfolder import RunFolder
from .spec import MethodSpec
from .store import Point
from .workbench import Workbench

LATENCY_RUNS = ((1, 5, 30), (64, 2, 7))  # (batch, warm-up forwards, timed forwards): medians of 30 and 7


def make_point(method: MethodSpec, level: float, seed: int, wb: Workbench, folder: RunFolder) -> Pruned:
    """The network of the point (method, level, seed): pruned by the method's pruner and recovered
    by its recovery, starting from the trained weights (an iterative chain: from its last level)."""
    if method.is_dense:
        return Pruned(wb.bench.fresh())
    return method.recovery.apply(method.pruner, level, seed, wb.bench, folder.files(method, level, seed))


def run_point(method: MethodSpec, level: float, seed: int, wb: Workbench, folder: RunFolder) -> Point:
    """Compute and measure one point."""
    start = time.perf_counter()
    if method.quant is not None:
        return quantized_point(method, level, seed, wb, folder, start)
    pruned = make_point(method, level, seed, wb, folder)
    return measure(pruned, method, level, seed, wb, folder, start)


def quantized_point(method: MethodSpec, level: float, seed: int, wb: Workbench, folder: RunFolder,
                    start: float) -> Point:
    """A quantized point: the network of its base point (stored in this run folder before it),
    its tables fine-tuned or its batch norm re-estimated where the method says so, written as the
    quantized file, read back, and what was read measured. A recovered point's file is kept in
    the run folder (rebuilding it would need its training again)."""
    base, card, _ = point_model(folder.root, method.base.text, level, seed)
    model, spec = base.model, method.quant
    fmt = get_format("quantized", False, spec)
    if spec.tuned:
        hold_codes(model, quantize_model(model, spec))
        bench = dataclasses.replace(wb.bench, retrain=wb.bench.retrain.for_quantized())
        retrain(model, bench, seed, folder.files(method, level, seed))
        release_codes(model)
    elif spec.recalibrated:
        model = dequantized(model, spec).to(wb.device)
        recalibrate_bn(model, wb.bench.bn_images(seed))
    with tempfile.TemporaryDirectory() as tmp:
        path = folder.point_file(method, level, seed, fmt.name) if method.keeps_model else Path(tmp) / "q"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = fmt.write(path, model.cpu(), card, wb.input_shape)
        model, _ = fmt.read(path)
    return measure(Pruned(model.to(wb.device), base.masks), method, level, seed, wb, folder, start,
                   file=(size, fmt.name))


def measure(pruned: Pruned, method: MethodSpec, level: float, seed: int, wb: Workbench, folder: RunFolder,
            start: float, file: tuple[int, str] | None = None) -> Point:
    """Evaluate and count a pruned model as the point (method, level, seed), begun at `start`;
    `file` is its file's (bytes, format) where already written, else measured here."""
    model = pruned.model
    ev = wb.evaluate(model)
    if pruned.structured is not None:  # weights removed, not zeroed: every byte stored is needed
        counted = macs(model, wb.input_shape)
        layers = pruned.structured.layers
        prunable = sum(n for _, n in layers.values())
        nonzero = prunable - sum(r for r, _ in layers.values())
        sparsity, effective, sparse = pruned.structured.achieved, float(counted.total), None
    else:
        counted = wb.dense_macs
        counts = count(model, wb.prunable)
        layers, sparsity = counts.per_layer, counts.sparsity
        nonzero, prunable = counts.nonzero, counts.prunable
        effective, sparse = counted.effective(weight_density(counts)), sparse_bytes(model, counts)
    if file is None:
        file_format = file_format_of(pruned)
        file_bytes = _file_bytes(model, method, level, seed, wb, folder, file_format)
    else:
        file_bytes, file_format = file
    quant = method.quant
    dense = dense_bytes(model)
    return Point(
        method=method.text, target_sparsity=level, seed=seed, sparsity=sparsity, nonzero_params=nonzero,
        prunable_params=prunable, total_params=sum(p.numel() for p in model.parameters()),
        correct=ev.correct, n_images=ev.n, top1=ev.top1, top5=ev.top5, loss=ev.loss,
        dense_bytes=dense, sparse_bytes=dense if sparse is None else sparse,
        seconds=time.perf_counter() - start,
        layers=layers, hits=ev.hits, macs=counted.total, effective_macs=effective, file_bytes=file_bytes,
        file_format=file_format if file_bytes is not None else None,
        bits=quant.bits if quant else None, quantizer=quant.quantizer.name if quant else None,
        **_latency(model, wb))


def _file_bytes(model: nn.Module, method: MethodSpec, level: float, seed: int, wb: Workbench,
                folder: RunFolder, file_format: str) -> int | None:
    """Bytes of the point's exported file, measured where that is cheapest: a kept model's file
    is written anyway; a format may know its bytes without writing (the structured one does); a
    one-shot mask point's compressed file is written (to a temporary folder) only if the sweep asks."""
    if method.keeps_model:
        return keep(model, file_format, folder.point_file(method, level, seed, file_format), wb.card,
                    wb.input_shape)
    fmt = FORMATS.get(file_format)
    known = fmt.size_of(model, wb.card)
    if known is not None or not wb.cfg.file_size:
        return known
    with tempfile.TemporaryDirectory() as tmp:
        return fmt.write(Path(tmp) / "point", model, wb.card, wb.input_shape)


def file_format_of(pruned: Pruned) -> str:
    """How a point's model is stored: a smaller network as structured, a masked one as sparse."""
    return "structured" if pruned.structured is not None else "sparse"


def keep(model: nn.Module, file_format: str, path: Path, card, input_shape: tuple[int, ...]) -> int:
    """Write a point's model in `file_format` (a registered format's name) where its run folder
    keeps it; returns the file's bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FORMATS.get(file_format).write(path, model, card, input_shape)


def _latency(model: nn.Module, wb: Workbench) -> dict:
    cfg = wb.cfg
    if not cfg.latency:
        return {}
    timing = {}
    for batch, warmup, repeats in LATENCY_RUNS:
        t = latency(model, wb.input_shape, batch, cfg.threads, warmup, repeats, cfg.runtime)
        timing[f"latency_b{batch}"] = t.median
    timing["latency_threads"], timing["latency_runtime"] = t.threads, t.runtime
    return timing
