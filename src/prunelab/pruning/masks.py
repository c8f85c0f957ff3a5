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


def layerwise(scores: dict[str, torch.Tensor], sparsity: float, **_options) -> Masks:
    """The same fraction in every layer: round(sparsity * n_layer) lowest scores each."""
    return {name: lowest_k_mask(s, n_pruned(sparsity, s.numel())) for name, s in scores.items()}


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


def global_(scores: dict[str, torch.Tensor], sparsity: float, layer_cap: float | None = None,
            **_options) -> Masks:
    """One threshold across all layers: the round(sparsity * N) lowest scores of the whole network.

    Args:
        scores: per-layer scores.
        sparsity: fraction of all prunable weights to drop.
        layer_cap: if given, no layer loses more than floor(layer_cap * n_layer) weights; the
            excess goes to the other layers (so the total stays exact while it fits under the caps).
    """
    total = sum(s.numel() for s in scores.values())
    k = n_pruned(sparsity, total)
    if layer_cap is None:
        caps = {n: s.numel() for n, s in scores.items()}
    else:
        check_sparsity(layer_cap, "layer cap")
        caps = {n: math.floor(layer_cap * s.numel()) for n, s in scores.items()}
    counts = global_counts(scores, min(k, sum(caps.values())), caps)
    return {n: lowest_k_mask(s, counts[n]) for n, s in scores.items()}


def sensitivity_ratios(profile: dict, sizes: dict[str, int], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities that reach `sparsity` overall, pruning first where accuracy cares least.

    For an allowed drop d, each layer may go to the largest profiled level such that pruning that
    layer alone, at it and every lower level, kept top-1 within d of dense. The smallest d whose
    layer levels reach `sparsity` overall is found by bisection; the levels are then scaled down
    uniformly to hit `sparsity` exactly.

    Args:
        profile: {"dense_top1": float, "layers": {name: [[level, top1], ...]}}, as written by
            `prunelab sensitivity`.
        sizes: prunable weights per layer.
        sparsity: overall target in [0, 1].
    """
    missing = sorted(set(sizes) - set(profile["layers"]))
    if missing:
        raise PrunelabError(f"the sensitivity profile has no curve for {', '.join(missing[:3])}; "
                            f"profile the same model with the same --prune-classifier setting")
    total = sum(sizes.values())
    curves = {n: sorted((lv, acc) for lv, acc in profile["layers"][n]) for n in sizes}

    def allowed(drop: float) -> dict[str, float]:
        out = {}
        for name, curve in curves.items():
            level = 0.0
            for lv, acc in curve:
                if acc < profile["dense_top1"] - drop:
                    break
                level = lv
            out[name] = level
        return out

    def overall(levels: dict[str, float]) -> float:
        return sum(levels[n] * sizes[n] for n in sizes) / total

    most = overall(allowed(float("inf")))
    if most < sparsity:
        raise PrunelabError(f"the sensitivity profile reaches only {most:.0%} overall; profile "
                            f"higher levels (up to 1.0) to ask for {sparsity:.0%}")
    lo, hi = 0.0, 100.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if overall(allowed(mid)) >= sparsity else (mid, hi)
    levels = allowed(hi)
    reach = overall(levels)
    return {n: lv * sparsity / reach if reach else 0.0 for n, lv in levels.items()}


def by_sensitivity(scores: dict[str, torch.Tensor], sparsity: float, profile: dict | None = None,
                   **_options) -> Masks:
    """Per-layer fractions from a sensitivity profile; exactly round(sparsity * N) weights in all."""
    if profile is None:
        raise PrunelabError("the sensitivity method needs a profile: run 'prunelab sensitivity' and "
                            "pass --sensitivity RUN/sensitivity.json")
    sizes = {n: s.numel() for n, s in scores.items()}
    ratios = sensitivity_ratios(profile, sizes, sparsity)
    exact = {n: ratios[n] * sizes[n] for n in sizes}
    counts = {n: min(math.floor(v), sizes[n]) for n, v in exact.items()}
    short = n_pruned(sparsity, sum(sizes.values())) - sum(counts.values())
    for n in sorted(exact, key=lambda n: counts[n] - exact[n])[:max(short, 0)]:  # largest remainders
        counts[n] += 1
    return {n: lowest_k_mask(s, counts[n]) for n, s in scores.items()}


ALLOCATIONS = {"layerwise": layerwise, "global": global_, "sensitivity": by_sensitivity}


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
