"""A sweep's cost, estimated before its first point from a training step and an evaluation
measured on this machine: a sweep that cannot finish within `--time-budget` is refused up front.

The estimate counts what the points will certainly do: every retraining step (at each of the
recipe's image sizes, distillation's extra forward of the dense network as a third of a step) and
every evaluation, at the speed measured when the sweep starts. It leaves out what a pruner itself
costs (seconds for magnitude methods; minutes a level for the sequential second-order ones), and a
machine busier or quieter later makes the points slower or faster than estimated."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..errors import PrunelabError
from ..measure import evaluate_batches
from ..recovery import train_config
from ..training.budget import step_seconds
from ..training.plan import size_at
from ..training.recipe import epoch_steps
from .workbench import Workbench

DISTILL_SHARE = 1 / 3  # the dense network's forward on every retraining step: about a third of one


@dataclass(frozen=True)
class Estimate:
    """What the points still to compute should take, in seconds."""

    points: int
    steps: int  # retraining steps in all
    training_s: float
    evaluation_s: float

    @property
    def seconds(self) -> float:
        return self.training_s + self.evaluation_s

    def __str__(self) -> str:
        return (f"about {_hours(self.seconds)} ({self.steps:,} retraining steps: "
                f"{_hours(self.training_s)}; evaluations: {_hours(self.evaluation_s)})")


def estimate(wb: Workbench, points: list) -> Estimate:
    """The cost of `points` (`PointSpec`s) on `wb`'s network and data."""
    recipes = [_recipe(wb, p.method) for p in points]
    training, steps = 0.0, 0
    if any(recipes):
        n, full = len(wb.train.train), wb.train.train.x.shape[-1]
        measured: dict[tuple, float] = {}
        for recipe in filter(None, recipes):
            per_epoch = epoch_steps(n, recipe)
            for epoch in range(recipe.epochs):
                size = size_at(epoch, recipe.epochs, recipe.sizes, full)
                key = (size, recipe.batch_size, recipe.amp, recipe.channels_last)
                if key not in measured:
                    measured[key] = step_seconds(wb.model, wb.train, recipe, wb.device, size)
                teacher = DISTILL_SHARE if recipe.distill > 0 else 0.0
                training += per_epoch * measured[key] * (1 + teacher)
                steps += per_epoch
    evaluations = len(points) * _evaluation_seconds(wb) if points else 0.0
    return Estimate(len(points), steps, training, evaluations)


def check_time_budget(wb: Workbench, points: list, budget_s: float) -> Estimate:
    """The estimate of `points`, or one line when it is over `budget_s`."""
    cost = estimate(wb, points)
    if cost.seconds > budget_s:
        raise PrunelabError(f"the {cost.points} points still to compute are estimated at {cost}, over the "
                            f"--time-budget of {_hours(budget_s)}; pass fewer --epochs, levels or methods, "
                            f"or a larger --time-budget")
    return cost


def _recipe(wb: Workbench, method):
    """The training recipe a point of `method` retrains with, or None where it does not."""
    rc = wb.cfg.recovery
    if method.quant is not None and method.quant.tuned:
        return train_config(rc.for_quantized(), 0)
    return train_config(rc, 0) if not method.is_dense and method.recovery.trains else None


def _evaluation_seconds(wb: Workbench, probe: int = 256) -> float:
    """One evaluation of the test images, from one of the first `probe` of them."""
    test = wb.test
    n = min(probe, len(test))
    start = time.perf_counter()
    evaluate_batches(wb.model, test.part(0, n).batches(wb.cfg.batch_size, wb.device))
    if wb.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * len(test) / n


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
