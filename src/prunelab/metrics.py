"""The one place that measures: accuracy, sparsity (counted zeros), parameter counts, bytes."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PrunelabError


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a classifier on a fixed set of images.

    Attributes:
        correct: images whose top-1 prediction is right.
        n: images evaluated.
        top1, top5: percent (top5 is top-min(5, classes)).
        loss: mean cross-entropy, nats.
        hits: bool (n,), top-1 right per image, in data order (for paired statistics).
    """

    correct: int
    n: int
    top1: float
    top5: float
    loss: float
    hits: np.ndarray


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> Evaluation:
    """Evaluate `model` (switched to eval mode) on normalised images.

    On CUDA the convolutions and matrix products run in true float32, TF32 switched off for the
    call: a GPU evaluation then agrees with a CPU re-check of the same weights to rounding, not
    to TF32's 10-bit mantissa. The device is read once, at the end.

    Args:
        model: classifier, on the same device as `x`.
        x: float (N, C, H, W), already normalised.
        y: int64 (N,) labels.
        batch_size: images per forward pass.
    """
    model.eval()
    hits, hits5 = [], []
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    with exact_float32():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size]).float()
            target = y[start:start + batch_size]
            loss += F.cross_entropy(logits, target, reduction="sum").double()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits.append(top[:, 0] == target)
            hits5.append((top == target[:, None]).any(dim=1))
    h, h5 = torch.cat(hits).cpu().numpy(), torch.cat(hits5).cpu().numpy()
    n = len(h)
    return Evaluation(int(h.sum()), n, float(100.0 * h.mean()), float(100.0 * h5.mean()), float(loss) / n, h)


@contextlib.contextmanager
def exact_float32():
    """TF32 off for cuDNN convolutions and CUDA matrix products inside, restored after (PyTorch
    turns it on for convolutions by default). No effect on the CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@dataclass(frozen=True)
class Counts:
    """Parameter counts of a (possibly masked) model.

    Attributes:
        prunable: weights pruning may touch.
        nonzero: of those, how many are not exactly zero.
        total: all parameters (prunable or not).
        per_layer: parameter name -> (zeros, size), prunable weights only.
    """

    prunable: int
    nonzero: int
    total: int
    per_layer: dict[str, tuple[int, int]]

    @property
    def sparsity(self) -> float:
        """The one definition: fraction of prunable weights that are exactly zero."""
        return 1.0 - self.nonzero / self.prunable if self.prunable else 0.0


def count(model: nn.Module, prunable: Iterable[str]) -> Counts:
    """Count zeros in `model`'s prunable weights (measured, not requested, sparsity)."""
    params = dict(model.named_parameters())
    per_layer = {}
    for name in prunable:
        w = params[name].detach()
        per_layer[name] = (int((w == 0).sum()), w.numel())
    size = sum(n for _, n in per_layer.values())
    zeros = sum(z for z, _ in per_layer.values())
    total = sum(p.numel() for p in model.parameters())
    return Counts(size, size - zeros, total, per_layer)


def dense_bytes(model: nn.Module) -> int:
    """Bytes of every tensor in the state dict stored densely (what a plain checkpoint holds)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def sparse_bytes(model: nn.Module, counts: Counts) -> int:
    """Bytes of a bitmask encoding: prunable weights as 1 bit each + their nonzero values; the
    rest dense. Computed from counts (theory for an encoding, not a file on disk)."""
    state = model.state_dict()
    itemsize = {name: state[name].element_size() for name in counts.per_layer}
    masked = sum((n + 7) // 8 + (n - z) * itemsize[name] for name, (z, n) in counts.per_layer.items())
    rest = sum(t.numel() * t.element_size() for k, t in state.items() if k not in counts.per_layer)
    return masked + rest


# ---------------------------------------------------------------- MACs (counted) and latency (measured)


@dataclass(frozen=True)
class Macs:
    """Multiply-accumulates of one forward pass of one image, counted by
    `torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2; convolutions and matrix
    products only: batch norm, activations, pooling and adds are not counted).

    Attributes:
        total: MACs of the model as it runs (dense kernels: zeros in weights are multiplied too).
        per_layer: module name -> MACs, for every conv and linear.
    """

    total: int
    per_layer: dict[str, int]

    def effective(self, density: dict[str, float]) -> float:
        """Theory, not a measurement: MACs if each layer skipped its zero weights, i.e. each
        layer's MACs scaled by the fraction of its weights that are nonzero (`density`, by
        module name; layers not listed stay dense). No dense kernel runs faster for it."""
        return self.total - sum(m * (1.0 - density.get(name, 1.0)) for name, m in self.per_layer.items())


@torch.no_grad()
def macs(model: nn.Module, input_shape: tuple[int, ...]) -> Macs:
    """Count the MACs of `model` on one input of `input_shape` (C, H, W), on the model's device."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros((1, *input_shape), device=device)
    kinds = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
    layers = {m: name for name, m in model.named_modules() if isinstance(m, kinds)}
    per_layer: dict[str, int] = {}
    counter = FlopCounterMode(display=False)
    start: list[int] = []

    def enter(module, args):
        start.append(counter.get_total_flops())

    def hook(module, args, out):
        # The layer's own count: the counter's running total before and after it.
        name = layers[module]
        per_layer[name] = per_layer.get(name, 0) + (counter.get_total_flops() - start.pop()) // 2

    pre = [m.register_forward_pre_hook(enter) for m in layers]
    post = [m.register_forward_hook(hook) for m in layers]
    try:
        with counter:
            model(x)
    finally:
        for h in pre + post:
            h.remove()
        model.train(was_training)
    return Macs(counter.get_total_flops() // 2, per_layer)


def weight_density(counts: Counts) -> dict[str, float]:
    """Module name -> fraction of its weight that is nonzero, for the prunable layers of `counts`."""
    return {name.removesuffix(".weight"): 1.0 - z / n for name, (z, n) in counts.per_layer.items() if n}


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
    import tempfile

    import onnxruntime as ort

    from .export import save_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/model.onnx"
        save_onnx(path, model, input_shape)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"input": x.detach().cpu().float().numpy()})[0])

    return run


LATENCY_RUNTIMES = {"torch": _torch_runner, "onnxruntime": _onnxruntime_runner}


def forward_runner(model: nn.Module, input_shape: tuple[int, ...], runtime: str = "torch",
                   threads: int = 1):
    """A callable `run(x) -> logits` doing one forward of `model` (eval mode) in `runtime`: 'torch'
    (eager, on the model's device) or 'onnxruntime' (CPU, `threads` intra-op threads; torch's
    thread count is the caller's to set)."""
    return LATENCY_RUNTIMES[check_runtime(runtime)](model.eval(), input_shape, threads)


def check_runtime(runtime: str) -> str:
    """`runtime` if it names a latency runtime, else a one-line error listing them."""
    if runtime not in LATENCY_RUNTIMES:
        raise PrunelabError(f"unknown latency runtime '{runtime}': choose from {', '.join(LATENCY_RUNTIMES)}")
    return runtime


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
            # torch: inputs wait on the model's device, so no copy is timed
            inputs = x.to(next(model.parameters()).device) if runtime == "torch" else x
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
