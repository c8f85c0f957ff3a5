"""A half cosine from the peak down to 0 (Loshchilov & Hutter 2017, without restarts)."""

from __future__ import annotations

import math

from . import SCHEDULES, Schedule


def cosine_lr(step: int, total_steps: int, base_lr: float) -> float:
    """Learning rate at `step` of `total_steps`: a half cosine from `base_lr` down to 0."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


SCHEDULES.register(Schedule("cosine", "a half cosine from the peak to 0", cosine_lr))
