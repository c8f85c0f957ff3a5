"""Learning-rate schedules, one per file: a pure function of the step (`TrainConfig.schedule`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...registry import Registry


@dataclass(frozen=True)
class Schedule:
    """`rate(t, total, peak)`: the learning rate at step t of `total` steps of a schedule peaking at
    `peak`; pure."""

    name: str
    description: str
    rate: Callable[[int, int, float], float]


SCHEDULES: Registry[Schedule] = Registry("schedule", "prunelab.training.schedules")
