"""Accuracy of a classifier on a fixed set of images, in true float32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PrunelabError


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

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """The 95% (Wilson score) interval of top-1, percent: how far another draw of as many
        images from the same distribution may read."""
        if self.n == 0:
            return 0.0, 100.0
        p, n = self.correct / self.n, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
        return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)

    @staticmethod
    def joined(parts: list[Evaluation]) -> Evaluation:
        """One evaluation of the images of `parts` (consecutive slices of one set, in order)."""
        n = sum(p.n for p in parts)
        hits = np.concatenate([p.hits for p in parts])
        top5 = sum(p.top5 * p.n for p in parts) / n
        loss = sum(p.loss * p.n for p in parts) / n
        return Evaluation(int(hits.sum()), n, float(100.0 * hits.mean()), top5, loss, hits)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> Evaluation:
    """Evaluate `model` (switched to eval mode) on normalised images.

    Args:
        model: classifier, on the same device as `x`.
        x: float (N, C, H, W), already normalised.
        y: int64 (N,) labels.
        batch_size: images per forward pass.
    """
    return evaluate_batches(model, ((x[i:i + batch_size], y[i:i + batch_size])
                                    for i in range(0, len(x), batch_size)))


@torch.inference_mode()
def evaluate_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Evaluation:
    """Evaluate `model` (switched to eval mode) on (images, labels) batches as the model takes
    them, streamed: only one batch is held at a time.

    On CUDA the convolutions and matrix products run in true float32, TF32 switched off for the
    call: a GPU evaluation then agrees with a CPU re-check of the same weights to rounding, not
    to TF32's 10-bit mantissa. The device is read once, at the end.
    """
    model.eval()
    hits, hits5, finite = [], [], []
    loss = None
    layout = None  # the first batch decides: channels-last where the model takes it, on the CPU
    with exact_float32():
        for x, target in batches:
            if layout is None:
                layout = _layout(model, x)
            logits = _forward(model, x.contiguous(memory_format=layout)).float()
            if logits.dim() != 2 or logits.shape[0] != len(target):
                raise PrunelabError(f"the network gives outputs of shape {tuple(logits.shape)} for "
                                    f"{len(target)} images; a classifier giving (images, classes) logits "
                                    f"is needed")
            finite.append(torch.isfinite(logits).all(dim=1))
            batch_loss = F.cross_entropy(logits, target, reduction="sum").double()
            loss = batch_loss if loss is None else loss + batch_loss
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits.append(top[:, 0] == target)
            hits5.append((top == target[:, None]).any(dim=1))
    if not hits:
        raise PrunelabError("no images to evaluate on: the test data is empty")
    h, h5 = torch.cat(hits).cpu().numpy(), torch.cat(hits5).cpu().numpy()
    bad = np.flatnonzero(~torch.cat(finite).cpu().numpy())
    if len(bad):
        raise PrunelabError(f"the network's outputs are NaN or inf on {len(bad)} of {len(h)} images (first: "
                            f"image {bad[0]}), so no accuracy of it means anything; its weights hold NaN/inf "
                            f"or grew out of range (retraining diverged: lower --lr)")
    n = len(h)
    return Evaluation(int(h.sum()), n, float(100.0 * h.mean()), float(100.0 * h5.mean()), float(loss) / n, h)


def _layout(model: nn.Module, x: torch.Tensor) -> torch.memory_format:
    """Channels-last for image batches on the CPU, where oneDNN's convolutions run 1.35-1.45x faster
    on them (`python bench/eval_layout.py`: ResNet-50, float32, one thread beside a training run,
    19.8 against 14.7 images/s); the same logits to float rounding (4e-5 there). A model whose
    forward cannot take them (a `view` of its input) keeps the contiguous layout."""
    if x.dim() != 4 or x.device.type != "cpu":
        return torch.contiguous_format
    try:
        model(x[:1].contiguous(memory_format=torch.channels_last))
    except (RuntimeError, ValueError, TypeError, IndexError):
        return torch.contiguous_format
    return torch.channels_last


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits; a forward that fails on the data is one line, not a traceback."""
    try:
        return model(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = (str(exc).splitlines() or [""])[0][:160]
        raise PrunelabError(f"the network's forward fails on images of shape {tuple(x.shape)} "
                            f"({type(exc).__name__}: {first}); pass data of the shape it takes") from None


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
