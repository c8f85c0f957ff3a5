"""The pruning contracts: a criterion scores weights, an allocation shares the total between layers
(a channel allocation: between groups of coupled channels), a pruner prunes a model to a level.
Each member declares itself in its own file in `methods/`."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..registry import Registry
from .masks import Masks, apply_masks, check_sparsity, grow, prunable_weights

if TYPE_CHECKING:
    from ..models import ModelCard
    from .structured import Structured

METHODS_PACKAGE = "prunelab.pruning.methods"


@dataclass(frozen=True)
class PruneContext:
    """What a pruner may need beyond the model and the level: one object, so a new need is one field.

    Attributes:
        card: the model's card (its architecture declares the classifier and the stem); masks
            computed from given weights need none.
        example_input: (1, C, H, W) on the model's device, for tracing channel dependencies.
        seed: seeds stochastic criteria.
        prune_classifier: mask pruners also prune the classifier's weight.
        layer_cap: the largest fraction of one layer (channel pruners: of a group's channels) to go.
        round_to: channel pruners keep channel counts at multiples of this.
        profile: per-layer sensitivity curves, for the sensitivity allocation.
        latency_table: per-layer latencies in the target runtime (`measure.latency_table`), for
            channel pruners that allocate by latency.
        prior: masks already in force (an iterative chain): their pruned weights stay pruned.
        original: prunable weight -> size in the network a level counts against, when the model
            is already a channel-pruned copy of it (an iterative channel chain).
        calibration: returns the `Calibration` (images and Hessians) when called, loaded on first
            use, for pruners that need data.
        damp: second-order pruners add damp * mean(diag H) to the Hessian's diagonal.
        block: second-order pruners visit this many input columns at a time.
        on_layer: told (layer, index, layers) as a pruner that takes a while reaches each layer.
    """

    card: ModelCard | None = None
    example_input: torch.Tensor | None = None
    seed: int = 0
    prune_classifier: bool = False
    layer_cap: float | None = None
    round_to: int | None = None
    profile: dict | None = None
    latency_table: Any = None
    prior: Masks | None = None
    original: dict[str, int] | None = None
    calibration: Callable[[], Any] | None = None
    damp: float = 0.01
    block: int = 128
    on_layer: Callable[[str, int, int], None] | None = None

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The weights pruning may touch in `model`: conv and linear, the classifier if asked."""
        return prunable_weights(model, self.card.info.classifier, self.prune_classifier)

    def but(self, **changes) -> PruneContext:
        """This context with some fields changed (the seed of a point, the prior of a chain)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Pruned:
    """A pruned model and what was done to it.

    Attributes:
        model: the pruned network: the model given, masked (mask pruners), or a new smaller
            module (channel pruners).
        masks: the masks applied (mask pruners), else None.
        structured: the channel-pruning result (channel pruners), else None.
    """

    model: nn.Module
    masks: Masks | None = None
    structured: Structured | None = None


@dataclass(frozen=True)
class Criterion:
    """Pure importance scores: `score(weight, generator)` returns a tensor of the weight's shape,
    low = pruned first; it reads the weight and never writes it. What a pruner hands it as the
    weight may be the weight seen through its inputs (`MaskPruner.weights`: Wanda's |w| x RMS(x)).
    """

    name: str
    description: str
    score: Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Allocation:
    """How a total is shared between layers: `allocate(scores, level, ctx)` returns masks that drop
    the lowest scores, exactly round(level * n) of the n weights in all (per layer, or overall)."""

    name: str
    description: str
    allocate: Callable[[dict[str, torch.Tensor], float, PruneContext], Masks]
    needs_profile: bool = False  # reads the context's sensitivity profile


@dataclass(frozen=True)
class GroupCriterion:
    """Importance of coupled channels: `score(group)` takes a Torch-Pruning group (every layer a
    set of channels reaches) and returns (channels,) scores, low = removed first; pure."""

    name: str
    description: str
    score: Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class ChannelAllocation:
    """How removed channels are shared between coupled groups (`structured.ChannelGroup`s):
    `counts(groups, ratio, caps)` gives each group's count for `ratio` of all channels, at most its
    cap (the lowest importances go); `prepare(net, groups, latency_table=, profile=, keep_stream=)`
    first gives the groups what `counts` reads besides their importances, or refuses in one line."""

    name: str
    description: str
    counts: Callable[[list, float, list[int]], list[int]]
    prepare: Callable[..., None] | None = None
    needs_profile: bool = False  # reads the context's channel sensitivity profile
    needs_latency_table: bool = False  # reads the context's latency table


class Pruner(ABC):
    """Prunes a model to a level.

    Attributes:
        name: the method's name in `--methods`.
        description: one line for listings and reports.
        stochastic: results depend on the seed (deterministic pruners run once per level).
        shrinks: removes channels: the result is a smaller network, with no masks.
        needs_calibration: reads calibration images (the context's `calibration`).
        needs_profile: reads a sensitivity profile (the context's `profile`).
        needs_latency_table: reads a latency table (the context's `latency_table`).
        updates_weights: changes the weights it keeps, so its point cannot be rebuilt by pruning
            the checkpoint again: the sweep keeps its model.
        fixed_level: the only level it has (N:M), else None.
    """

    name: str
    description: str
    stochastic = False
    shrinks = False
    needs_calibration = False
    needs_profile = False
    needs_latency_table = False
    updates_weights = False
    fixed_level: float | None = None

    def levels(self, grid: tuple[float, ...]) -> tuple[float, ...]:
        """The levels a sweep prunes at: the grid, or the one level the pruner has."""
        return (self.fixed_level,) if self.fixed_level is not None else grid

    def check_level(self, level: float) -> float:
        check_sparsity(level)
        if self.fixed_level is not None and abs(level - self.fixed_level) > 1e-9:
            from ..errors import PrunelabError

            raise PrunelabError(f"method '{self.name}' has a fixed sparsity of {self.fixed_level:g}, "
                                f"not {level:g}")
        return level

    def check_model(self, model: nn.Module, ctx: PruneContext) -> None:
        """Raise a one-line `PrunelabError` if `model` is not a network this pruner can prune
        (a sweep asks once, before its first point); most pruners take any network."""
        return None

    @abstractmethod
    def prune(self, model: nn.Module, level: float, ctx: PruneContext) -> Pruned:
        """Prune `model` to `level` (the fraction of prunable weights removed). Mask pruners
        change `model` in place; pass a copy to keep the original."""


class MaskPruner(Pruner):
    """A pruner that zeroes single weights by a mask; recoveries may ask it for masks directly."""

    def weights(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        """What its masks are computed from, one tensor per weight it prunes, shaped like it: by
        default every prunable weight, detached; a pruner that reads calibration images may return
        them scaled by what their inputs carry (`methods/wanda.py`)."""
        return {k: w.detach() for k, w in ctx.prunable(model).items()}

    @abstractmethod
    def masks(self, weights: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> Masks:
        """Masks for `weights` at `level`, grown from `ctx.prior` (reads weights, never writes)."""

    def prune(self, model: nn.Module, level: float, ctx: PruneContext) -> Pruned:
        masks = self.masks(self.weights(model, ctx), self.check_level(level), ctx)
        apply_masks(model, masks)
        return Pruned(model, masks)


class ScoredPruner(MaskPruner):
    """Criterion x allocation: score every weight, let the allocation drop the lowest."""

    def __init__(self, name: str, criterion: Criterion, allocation: Allocation, description: str,
                 stochastic: bool = False):
        self.name, self.criterion, self.allocation = name, criterion, allocation
        self.description, self.stochastic = description, stochastic
        self.needs_profile = allocation.needs_profile

    def masks(self, weights: dict[str, torch.Tensor], level: float, ctx: PruneContext) -> Masks:
        level = self.check_level(level)
        generator = torch.Generator().manual_seed(ctx.seed)
        scores = {}
        for name, w in weights.items():
            s = self.criterion.score(w, generator).float()
            if ctx.prior is not None and name in ctx.prior:
                s = s.masked_fill(~ctx.prior[name].to(s.device), float("-inf"))  # stays pruned
            scores[name] = s
        return grow(ctx.prior, self.allocation.allocate(scores, level, ctx))


CRITERIA: Registry[Criterion] = Registry("criterion", METHODS_PACKAGE)
ALLOCATIONS: Registry[Allocation] = Registry("allocation", METHODS_PACKAGE)
GROUP_CRITERIA: Registry[GroupCriterion] = Registry("channel criterion", METHODS_PACKAGE)
CHANNEL_ALLOCATIONS: Registry[ChannelAllocation] = Registry("channel allocation", METHODS_PACKAGE)
PRUNERS: Registry[Pruner] = Registry("method", METHODS_PACKAGE)
