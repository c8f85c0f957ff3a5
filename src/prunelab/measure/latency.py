"""Latency, measured: forwards timed side by side in a registered runtime (eager torch, onnxruntime)."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PrunelabError
from ..registry import Registry


def _torch_runner(model: nn.Module, input_shape: tuple[int, ...], threads: int):
    """Eager PyTorch on the model's device (inputs moved there, outputs synchronised)."""
    device = next(model.parameters()).device

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        out = model(x.to(device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def _onnxruntime_runner(model: nn.Module, input_shape: tuple[int, ...], threads: int):
    """The model as `prunelab export --format onnx` writes it, run by onnxruntime's CPU provider
    with every graph optimisation on (batch norm folded into convolutions, conv+ReLU fused)."""
    from ..io.formats.onnx import save_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/model.onnx"
        save_onnx(path, model, input_shape)
        return _session_runner(path, threads)


def _onnxruntime_int8_runner(model: nn.Module, input_shape: tuple[int, ...], threads: int):
    """The model as `prunelab export --format onnx-int8` writes it (onnxruntime's static int8
    quantization, QDQ), run as `onnxruntime` runs the float one. Calibrated here on random
    inputs: calibration sets the scales, not the work, so the time is the exported file's."""
    from ..io.formats.onnx_int8 import save_onnx_int8

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        images = torch.randn((64, *input_shape), generator=torch.Generator().manual_seed(0))
        save_onnx_int8(path, model, input_shape, images)
        return _session_runner(str(path), threads)


def _session_runner(path: str, threads: int):
    """run(x) -> logits of the ONNX file at `path` in onnxruntime's CPU provider, every graph
    optimisation on, `threads` intra-op threads, sequential."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])  # file may go now

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"input": x.detach().cpu().float().numpy()})[0])

    return run


@dataclass(frozen=True)
class Runtime:
    """What runs the timed forwards: `make(model, input_shape, threads)` returns `run(x) -> logits`."""

    name: str
    make: Callable[[nn.Module, tuple[int, ...], int], Callable[[torch.Tensor], torch.Tensor]]
    on_model_device: bool  # it runs where the model is, so inputs wait there (no copy is timed)


RUNTIMES: Registry[Runtime] = Registry("latency runtime")
RUNTIMES.register(Runtime("torch", _torch_runner, on_model_device=True))
RUNTIMES.register(Runtime("onnxruntime", _onnxruntime_runner, on_model_device=False))
RUNTIMES.register(Runtime("onnxruntime-int8", _onnxruntime_int8_runner, on_model_device=False))


def forward_runner(model: nn.Module, input_shape: tuple[int, ...], runtime: str = "torch",
                   threads: int = 1):
    """A callable `run(x) -> logits` doing one forward of `model` (eval mode) in `runtime`: 'torch'
    (eager, on the model's device) or 'onnxruntime' (CPU, `threads` intra-op threads; torch's
    thread count is the caller's to set)."""
    return RUNTIMES.get(runtime).make(model.eval(), input_shape, threads)


def check_runtime(runtime: str) -> str:
    """`runtime` if it names a latency runtime, else a one-line error listing them."""
    return RUNTIMES.get(runtime).name


def check_threads(threads) -> int:
    """`threads` if it is a positive integer (a thread count), else a one-line error."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise PrunelabError(f"threads must be a positive integer, got {threads!r}")
    return threads


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of a forward pass, measured: median over repeats after warm-up.

    Attributes:
        median: seconds per forward of `batch` images.
        iqr: interquartile range of the repeats, seconds.
        batch: images per forward.
        threads: intra-op CPU threads during the measurement.
        repeats: timed forwards.
        runtime: what ran the forwards: 'torch' (eager) or 'onnxruntime'.
    """

    median: float
    iqr: float
    batch: int
    threads: int
    repeats: int
    runtime: str = "torch"


def latencies(models: dict[str, nn.Module], input_shape: tuple[int, ...], batch: int = 1,
              threads: int | None = None, warmup: int = 5, repeats: int = 30,
              runtime: str = "torch") -> dict[str, Latency]:
    """Measure the forward latency of several models side by side, round-robin: every round times
    one forward of each model in turn, so load from other processes falls on all of them alike
    and their ratios hold on a shared machine (times taken apart do not).

    With more than one model, each timed forward comes right after an untimed one of the same
    model, so it finds its own weights in cache, as a model serving requests back to back does.
    Without that, whichever model follows the largest one pays for reloading its weights: on
    ResNet-56 in onnxruntime at batch 1 the same pruned network timed 5% slower right after the
    dense one than after another pruned one.

    Args:
        models: label -> network; each switched to eval mode.
        input_shape: (C, H, W) of one image.
        batch: images per forward.
        threads: intra-op CPU threads during the measurement (restored after); None keeps
            torch's current setting.
        warmup: untimed rounds first (allocator, kernel selection, caches).
        repeats: timed rounds (each, with several models, one untimed forward and one timed per
            model); the median per model is reported.
        runtime: 'torch' (eager, on each model's device) or 'onnxruntime' (the exported ONNX, CPU).

    Returns:
        label -> its latency.
    """
    import time

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used = torch.get_num_threads()
        x = torch.randn((batch, *input_shape), generator=torch.Generator().manual_seed(0))
        runs = {}
        for label, model in models.items():
            run = forward_runner(model, input_shape, runtime, used)
            inputs = x.to(next(model.parameters()).device) if RUNTIMES.get(runtime).on_model_device else x
            runs[label] = functools.partial(run, inputs)
        times: dict[str, list[float]] = {label: [] for label in runs}
        prime = len(runs) > 1
        for i in range(warmup + repeats):
            for label, run in runs.items():
                if prime and i >= warmup:
                    run()
                start = time.perf_counter()
                run()
                if i >= warmup:
                    times[label].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    out = {}
    for label, t in times.items():
        q1, med, q3 = np.percentile(t, [25, 50, 75])
        out[label] = Latency(float(med), float(q3 - q1), batch, used, repeats, runtime)
    return out


def latency(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1, threads: int | None = None,
            warmup: int = 5, repeats: int = 30, runtime: str = "torch") -> Latency:
    """Measure the forward latency of one model (eval mode) on random inputs: `latencies` of one."""
    return latencies({"model": model}, input_shape, batch, threads, warmup, repeats, runtime)["model"]
