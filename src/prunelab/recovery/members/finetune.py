"""Fine-tuning (`+ft`): one-shot from the trained weights, then retrain with the masks held (a
channel-pruned network retrains as the smaller network it is)."""

from __future__ import annotations

from ...pruning import Pruned, Pruner
from ..base import RECOVERIES, Bench, PointFiles, Recovery
from ..config import TRAINING_SETTINGS
from ..retrain import retrain


class FineTune(Recovery):
    name = "ft"
    description = "one-shot from the dense weights, then retrain"
    trains = True
    settings = TRAINING_SETTINGS

    def apply(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles) -> Pruned:
        pruned = bench.one_shot(pruner, level, seed)
        retrain(pruned.model, bench, seed, files, masks=pruned.masks)
        return pruned


RECOVERIES.register(FineTune())
