"""How the learning rate runs while a pruned network retrains (`--retrain`), one mode per file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...registry import Registry


@dataclass(frozen=True)
class RetrainMode:
    """Attributes:
        schedule: RecoveryConfig -> the TrainConfig fields that place its learning rate.
        describe: the stored retraining settings (a dict) -> one line for reports.
    """

    name: str
    description: str
    schedule: Callable
    describe: Callable[[dict], str]


RETRAIN_MODES: Registry[RetrainMode] = Registry("retraining mode", "prunelab.recovery.modes")
