"""Pure mask maths: masks are data (`dict[param name -> bool tensor]`, True = kept)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import PrunelabError

Masks = dict[str, torch.Tensor]


def check_sparsity(value: float, what: str = "sparsity") -> float:
    """Validate a sparsity (fraction of prunable weights that are zero) at the boundary."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PrunelabError(f"{what} must be a number in [0, 1], got {value!r}")
    if not (0.0 <= float(value) <= 1.0) or math.isnan(value):
        raise PrunelabError(f"{what} must be in [0, 1], got {value}")
    return float(value)


def n_pruned(sparsity: float, n: int) -> int:
    """How many of `n` weights a sparsity removes: exactly round(sparsity * n), as torch.nn.utils.prune."""
    return round(check_sparsity(sparsity) * n)


def prunable_weights(model: nn.Module, classifier: str, include_classifier: bool = False
                     ) -> dict[str, nn.Parameter]:
    """The weights pruning may touch: conv and linear weights, in module order.

    Args:
        model: the network.
        classifier: module name of its declared classifier (see `ModelInfo.classifier`).
        include_classifier: also prune the classifier's weight (the classic study did).
    """
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear | nn.Conv1d | nn.Conv3d):
            if name == classifier and not include_classifier:
                continue
            out[f"{name}.weight" if name else "weight"] = module.weight
    if not out:
        raise PrunelabError("the model has no conv or linear weights to prune")
    return out


def lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask that drops the `k` lowest scores (same selection as `prune.l1_unstructured`).

    Args:
        scores: any shape.
        k: number of entries to drop, 0 <= k <= scores.numel().

    Returns:
        bool tensor shaped like `scores`, with exactly `k` False entries.
    """
    mask = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        drop = torch.topk(scores.reshape(-1), k=k, largest=False).indices
        mask[drop] = False
    return mask.view(scores.shape)


def global_counts(scores: dict[str, torch.Tensor], k: int, caps: dict[str, int]) -> dict[str, int]:
    """Per-layer counts of one global threshold, water-filled so no layer exceeds its cap."""
    fixed: dict[str, int] = {}
    while True:
        free = [n for n in scores if n not in fixed]
        budget = k - sum(fixed.values())
        counts = dict.fromkeys(free, 0)
        if budget > 0 and free:
            flat = torch.cat([scores[n].reshape(-1) for n in free])
            owner = torch.cat([torch.full((scores[n].numel(),), i, device=flat.device)
                               for i, n in enumerate(free)])
            picked = owner[torch.topk(flat, k=budget, largest=False).indices]
            per_layer = torch.bincount(picked, minlength=len(free)).tolist()
            counts = dict(zip(free, per_layer, strict=True))
        over = [n for n in free if counts[n] > caps[n]]
        if not over:
            return {**counts, **fixed}
        fixed.update({n: caps[n] for n in over})


def nm_mask(scores: torch.Tensor, n: int = 2, m: int = 4, name: str = "weight") -> torch.Tensor:
    """N:M semi-structured mask: in every group of `m` consecutive input channels (input features
    of a Linear) feeding one output at one kernel position, keep the `n` highest scores.

    That is the pattern sparse tensor cores read: a convolution runs as a GEMM whose reduction
    runs over (kh, kw, in) with the input channels innermost (NHWC), so groups run along `in`
    at a fixed (out, kh, kw) — not across kernel positions.

    Args:
        scores: (out, in) or (out, in, kh, kw) importance scores, e.g. |w|.
        n: weights kept per group, 0 <= n <= m.
        m: group length, >= 1.
        name: the layer, for the error message.

    Returns:
        bool mask shaped like `scores`, True = kept, exactly n per group (sparsity exactly 1 - n/m).
    """
    if not (isinstance(n, int) and isinstance(m, int)) or m < 1 or not 0 <= n <= m:
        raise PrunelabError(f"N:M needs integers 0 <= N <= M, M >= 1; got {n}:{m}")
    if scores.dim() < 2 or scores.shape[1] % m:
        inputs = scores.shape[1] if scores.dim() >= 2 else 1
        raise PrunelabError(f"N:M {n}:{m} cannot prune layer '{name}': its {inputs} input channels "
                            f"(features) are not a multiple of {m}")
    inner = scores.movedim(1, -1)  # (out, kh, kw, in): groups of m along the input channels
    groups = inner.reshape(-1, m)
    keep = torch.topk(groups, k=n, dim=1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True)
    return mask.view(inner.shape).movedim(-1, 1).contiguous()


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the masked weights in place: the one place a mask is written into a model. A mask
    already on its weight's device costs no copy (a training loop applies them every step)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].device))  # float x bool: no cast copy


def grow(prior: Masks | None, new: Masks) -> Masks:
    """Masks only grow: a weight pruned before stays pruned (`new & prior`)."""
    if prior is None:
        return new
    return {name: m & prior[name] if name in prior else m for name, m in new.items()}
