"""Accuracy of a classifier on a fixed set of images, in true float32."""

from __future__ import annotations

import contextlib
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
    hits, hits5, finite = [], [], []
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    with exact_float32():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size]).float()
            target = y[start:start + batch_size]
            finite.append(torch.isfinite(logits).all(dim=1))
            loss += F.cross_entropy(logits, target, reduction="sum").double()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits.append(top[:, 0] == target)
            hits5.append((top == target[:, None]).any(dim=1))
    h, h5 = torch.cat(hits).cpu().numpy(), torch.cat(hits5).cpu().numpy()
    bad = np.flatnonzero(~torch.cat(finite).cpu().numpy())
    if len(bad):
        raise PrunelabError(f"the network's outputs are NaN or inf on {len(bad)} of {len(h)} images (first: "
                            f"image {bad[0]}), so no accuracy of it means anything; its weights hold NaN/inf "
                            f"or grew out of range (retraining diverged: lower --lr)")
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
