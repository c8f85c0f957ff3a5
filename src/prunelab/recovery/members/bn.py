"""Batch-norm recalibration: one-shot, then re-estimate every batch norm's statistics on training
images (no weight update). Pruning shifts activations; stale statistics cost much of what a
one-shot point loses."""

from __future__ import annotations

from ...pruning import Pruned, Pruner
from ..base import RECOVERIES, Bench, PointFiles, Recovery
from ..config import BN_SETTINGS
from ..retrain import recalibrate_bn


class BatchNorm(Recovery):
    name = "bn"
    description = "one-shot, then re-estimate batch-norm statistics (no weight update)"
    recalibrates = True
    settings = BN_SETTINGS

    def apply(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles) -> Pruned:
        pruned = bench.one_shot(pruner, level, seed)
        recalibrate_bn(pruned.model, bench.bn_images(seed))
        return pruned


RECOVERIES.register(BatchNorm())
