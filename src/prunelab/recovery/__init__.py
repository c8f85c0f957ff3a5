"""Winning accuracy back after pruning: one recovery per file in `members/` (none, bn, ft, iter,
gradual), retraining modes in `modes/`. A sweep method is `<pruner>[+<recovery>]`."""

from .base import RECOVERIES, Bench, PointFiles, Recovery
from .config import RecoveryConfig, train_config
from .modes import RETRAIN_MODES
from .retrain import recalibrate_bn, retrain

__all__ = ["RECOVERIES", "RETRAIN_MODES", "Bench", "PointFiles", "Recovery", "RecoveryConfig",
           "recalibrate_bn", "retrain", "train_config"]
