"""Size a training schedule to a time budget from step times measured on this machine, before the
first epoch; the plan is then part of the recipe (saved with the state, kept on every resume)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset, normalize
from ..errors import PrunelabError
from ..measure import evaluate
from .batch import distillation_loss
from .fit import native_bf16
from .plan import epochs_within, size_at
from .recipe import TrainConfig, epoch_steps


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the budget buys: `epochs`, at `sizes` (one image size per epoch), from the measured
    seconds of one step at each size and of one evaluation."""

    epochs: int
    budget_s: float
    sizes: tuple[int, ...]
    step_seconds: dict[int, float]
    eval_seconds: float
    planned_s: float  # what the epochs are expected to take


def step_seconds(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device, size: int,
                 steps: int = 3) -> float:
    """Seconds of one training step (batch `cfg.batch_size`, `size` x `size` pixels, the recipe's
    precision and memory format) on a copy of `model`, the fastest of `steps` after one warm-up."""
    net = copy.deepcopy(model).to(device).train()
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=cfg.momentum)
    n = min(cfg.batch_size, len(data.train))
    x = F.interpolate(torch.randn(n, *data.train.x.shape[1:], device=device), size=(size, size),
                      mode="bilinear", antialias=True)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = data.train.y[:n].to(device)
    bf16 = cfg.amp and native_bf16(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with autocast:
            loss = distillation_loss(net(x).float(), None, y, 0.0, 1.0, cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:]) * cfg.batch_size / n


def plan(model: nn.Module, data: Dataset, mean, std, cfg: TrainConfig, device: torch.device) -> Plan:
    """The most epochs (at most `cfg.epochs`) whose measured cost fits `cfg.time_budget`; a budget
    too small for one epoch is one line."""
    full = data.train.x.shape[-1]
    sizes = sorted({size_at(e, cfg.epochs, cfg.sizes, full) for e in range(cfg.epochs)} | {full})
    per_step = {s: step_seconds(model, data, cfg, device, s) for s in sizes}
    start = time.perf_counter()
    probe = data.test.x[:256]
    evaluate(model.to(device), normalize(probe.to(device), mean, std), data.test.y[:256].to(device))
    eval_s = (time.perf_counter() - start) * len(data.test) / len(probe)
    per_epoch = {s: per_step[s] * epoch_steps(len(data.train), cfg) + eval_s for s in sizes}
    epochs = epochs_within(cfg.time_budget, per_epoch, cfg.sizes, full, most=cfg.epochs)
    if epochs < 1:
        cheapest = min(per_epoch.values())
        raise PrunelabError(f"time budget {cfg.time_budget:.0f} s is too small for one epoch (measured "
                            f"{cheapest:.0f} s at the smallest size on {device}); give at least "
                            f"{cheapest * 1.1:.0f}s, or fewer training images")
    by_epoch = tuple(size_at(e, epochs, cfg.sizes, full) for e in range(epochs))
    return Plan(epochs, cfg.time_budget, by_epoch, per_step, eval_s, sum(per_epoch[s] for s in by_epoch))
