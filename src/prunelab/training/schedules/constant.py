"""A constant learning rate (plain fine-tuning)."""

from __future__ import annotations

from . import SCHEDULES, Schedule


def constant_lr(step: int, total_steps: int, base_lr: float) -> float:
    return base_lr


SCHEDULES.register(Schedule("constant", "the same rate at every step", constant_lr))
