"""Pure importance scores: a weight tensor in, a score tensor of the same shape out; low = pruned first."""

from __future__ import annotations

from collections.abc import Callable

import torch

Criterion = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def l1(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Magnitude |w| (the L1 norm of each single weight), as `prune.l1_unstructured` ranks them."""
    del generator  # deterministic
    return weight.detach().abs()


def random(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform random scores: the control that any pruning criterion has to beat."""
    return torch.rand(weight.shape, generator=generator, device="cpu").to(weight.device)


CRITERIA: dict[str, Criterion] = {"l1": l1, "random": random}
