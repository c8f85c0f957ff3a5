"""The one place that measures: accuracy, sparsity (counted zeros), parameter counts, bytes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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

    Args:
        model: classifier, on the same device as `x`.
        x: float (N, C, H, W), already normalised.
        y: int64 (N,) labels.
        batch_size: images per forward pass.
    """
    model.eval()
    hits, hits5, loss = [], [], 0.0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size]).float()
        target = y[start:start + batch_size]
        loss += F.cross_entropy(logits, target, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits.append(top[:, 0] == target)
        hits5.append((top == target[:, None]).any(dim=1))
    h, h5 = torch.cat(hits).cpu().numpy(), torch.cat(hits5).cpu().numpy()
    n = len(h)
    return Evaluation(int(h.sum()), n, float(100.0 * h.mean()), float(100.0 * h5.mean()), loss / n, h)


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
