"""A straight line from the peak down to 0: the schedule that does best when the budget of steps is
fixed in advance (Li, Yumer & Ramanan 2020, "Budgeted training")."""

from __future__ import annotations

from . import SCHEDULES, Schedule


def linear_lr(step: int, total_steps: int, base_lr: float) -> float:
    """Learning rate at `step` of `total_steps`: `base_lr` falling linearly to 0 at the last step."""
    return base_lr * max(0.0, 1.0 - min(step, total_steps) / max(total_steps, 1))


SCHEDULES.register(Schedule("linear", "a straight line from the peak to 0", linear_lr))
