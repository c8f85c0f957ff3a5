"""The recovery contract: how a pruned network gets its accuracy back; one recovery per file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import Dataset
from ..pruning import PruneContext, Pruned, Pruner
from ..registry import Registry
from .config import RecoveryConfig


@dataclass(frozen=True)
class PointFiles:
    """Where one point's files go; the run folder's layout decides, a recovery only uses them.

    Attributes:
        partial: the training state while the point retrains (resumed after an interrupt).
        chain: level -> a mask chain's state (weights and masks) at that level.
        kept: (level, format) -> the kept model of a point at that level ("sparse"/"structured").
    """

    partial: Path
    chain: Callable[[float], Path]
    kept: Callable[[float, str], Path]


@dataclass
class Bench:
    """What every point of a run is computed with, set up once by the experiment layer.

    Attributes:
        model: the network, reloaded from `dense_state` by `fresh()` (points share it).
        dense_state: the trained weights.
        ctx: the pruning context (each point sets its own seed).
        device: where to compute.
        retrain: the retraining settings.
        levels: the run's grid (an iterative chain steps through it).
        train_data: returns the training images, loaded on first use.
        bn_images: (seed) -> the batches of training images batch norms are re-estimated on,
            as the model takes them, on the device.
        teacher: returns the dense network retraining distils from, or None.
        on_epoch: called as (epoch record) after each retraining epoch of the point in flight.
    """

    model: nn.Module
    dense_state: dict[str, torch.Tensor]
    ctx: PruneContext
    device: torch.device
    retrain: RecoveryConfig
    levels: tuple[float, ...]
    train_data: Callable[[], Dataset]
    teacher: Callable[[], nn.Module | None]
    bn_images: Callable[[int], Iterable[torch.Tensor]]
    on_epoch: Callable[[dict], None] | None = None

    def fresh(self) -> nn.Module:
        """The bench's model with the trained weights again (a point never compounds on another)."""
        self.model.load_state_dict(self.dense_state)
        return self.model

    def one_shot(self, pruner: Pruner, level: float, seed: int) -> Pruned:
        """The trained weights pruned once by `pruner`: where every non-chained recovery starts."""
        return pruner.prune(self.fresh(), level, self.ctx.but(seed=seed))


class Recovery(ABC):
    """What happens after pruning.

    Attributes:
        name: the suffix after '+' in a sweep method ('none' for none).
        description: one line for listings and reports.
        trains: runs SGD on the training split (so its result depends on the seed).
        chained: each level starts from the previous level's result.
        one_shot: it does nothing after pruning (the recovery called 'none').
        recalibrates: it re-estimates batch-norm statistics (its settings then fix results).
        settings: the `RecoveryConfig` fields it reads: with its name, what fixes its points'
            numbers (a method's recipe), so a method with another recipe can join a run.
    """

    name: str
    description: str
    trains = False
    chained = False
    one_shot = False
    recalibrates = False
    settings: tuple[str, ...] = ()

    def refusal(self, pruner: Pruner) -> str | None:
        """Why this recovery cannot follow `pruner` (one line, with what to use instead), or None."""
        return None

    def keeps_model(self, pruner: Pruner) -> bool:
        """Whether the point's model must be kept as a file: its weights exist nowhere else."""
        return True

    @abstractmethod
    def apply(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles) -> Pruned:
        """Prune with `pruner` to `level` and recover; returns the pruned, recovered network."""


RECOVERIES: Registry[Recovery] = Registry("recovery", "prunelab.recovery.members")
