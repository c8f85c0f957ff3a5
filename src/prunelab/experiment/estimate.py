"""A sweep's cost, estimated before its first point from a training step and an evaluation
measured on this machine: a sweep that cannot finish within `--time-budget` is refused up front.

The estimate counts what the points will certainly do: every retraining step (at each of the
recipe's image sizes, distillation's extra forward of the dense network as a third of a step) and
every evaluation, at the speed measured when the sweep starts. It leaves out what a pruner itself
costs (seconds for magnitude methods; minutes a level for the sequential second-order ones), and a
machine busier or quieter later makes the points slower or faster than estimated. With
`--fit-epochs`, the retraining epochs are the most that fit the budget (`fitted_epochs`)."""

from __future__ import annotations

import dataclasses
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
    epochs: int = 0  # of each retraining point (--epochs, or as --fit-epochs sized them)

    @property
    def seconds(self) -> float:
        return self.training_s + self.evaluation_s

    def __str__(self) -> str:
        return (f"about {_hours(self.seconds)} ({self.steps:,} retraining steps: "
                f"{_hours(self.training_s)}; evaluations: {_hours(self.evaluation_s)})")


class Costs:
    """What the estimates read, measured once on this machine when first asked: a training step
    of each image size and recipe, and one evaluation of the test images."""

    def __init__(self, wb: Workbench):
        self.wb, self._steps, self._evaluation = wb, {}, None

    def step(self, recipe, size: int) -> float:
        key = (size, recipe.batch_size, recipe.amp, recipe.channels_last)
        if key not in self._steps:
            self._steps[key] = step_seconds(self.wb.model, self.wb.train, recipe, self.wb.device, size)
        return self._steps[key]

    def evaluation(self) -> float:
        if self._evaluation is None:
            self._evaluation = _evaluation_seconds(self.wb)
        return self._evaluation


def estimate(wb: Workbench, points: list, costs: Costs | None = None, epochs: int | None = None) -> Estimate:
    """The cost of `points` (`PointSpec`s) on `wb`'s network and data (each retraining for
    `epochs`, where given, in place of the recipe's)."""
    costs = costs or Costs(wb)
    recipes = [_recipe(wb, p.method, epochs) for p in points]
    training, steps = 0.0, 0
    if any(recipes):
        n, full = len(wb.train.train), wb.train.train.x.shape[-1]
        for recipe in filter(None, recipes):
            per_epoch = epoch_steps(n, recipe)
            teacher = DISTILL_SHARE if recipe.distill > 0 else 0.0
            for epoch in range(recipe.epochs):
                size = size_at(epoch, recipe.epochs, recipe.sizes, full)
                training += per_epoch * costs.step(recipe, size) * (1 + teacher)
                steps += per_epoch
    evaluations = len(points) * costs.evaluation() if points else 0.0
    return Estimate(len(points), steps, training, evaluations, epochs or wb.cfg.recovery.epochs)


def check_time_budget(wb: Workbench, points: list, budget_s: float, costs: Costs | None = None) -> Estimate:
    """The estimate of `points`, or one line when it is over `budget_s`."""
    cost = estimate(wb, points, costs)
    if cost.seconds > budget_s:
        raise PrunelabError(f"the {cost.points} points still to compute are estimated at {cost}, over the "
                            f"--time-budget of {_hours(budget_s)}; pass fewer --epochs, levels or methods, "
                            f"or a larger --time-budget (with --fit-epochs, the epochs are sized to it)")
    return cost


def fitted_epochs(wb: Workbench, points: list, budget_s: float, costs: Costs | None = None
                  ) -> tuple[int, Estimate]:
    """The most retraining epochs, at most the recipe's `--epochs`, for which `points` are
    estimated within `budget_s`, and their estimate; one line when not even one epoch fits."""
    costs = costs or Costs(wb)
    most = wb.cfg.recovery.epochs
    low, high = 1, most  # the estimate grows with the epochs: the largest that fits, by bisection
    one = estimate(wb, points, costs, low)
    if one.seconds > budget_s:
        raise PrunelabError(f"--fit-epochs: even one retraining epoch is over the --time-budget of "
                            f"{_hours(budget_s)}: the {one.points} points are estimated at {one}; give a "
                            f"larger --time-budget, or fewer levels or methods")
    while low < high:
        middle = (low + high + 1) // 2
        if estimate(wb, points, costs, middle).seconds <= budget_s:
            low = middle
        else:
            high = middle - 1
    return low, estimate(wb, points, costs, low)


def _recipe(wb: Workbench, method, epochs: int | None = None):
    """The training recipe a point of `method` retrains with (for `epochs`, where given), or None
    where it does not."""
    rc = wb.cfg.recovery if epochs is None else dataclasses.replace(wb.cfg.recovery, epochs=epochs)
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
