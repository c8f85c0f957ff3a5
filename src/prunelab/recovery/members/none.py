"""One-shot: prune a fresh copy of the trained weights and evaluate, nothing else."""

from __future__ import annotations

from ...pruning import Pruned, Pruner
from ..base import RECOVERIES, Bench, PointFiles, Recovery


class OneShot(Recovery):
    name = "none"
    description = "one-shot: prune and evaluate"
    one_shot = True

    def keeps_model(self, pruner: Pruner) -> bool:
        return pruner.updates_weights  # else pruning the checkpoint again rebuilds it exactly

    def apply(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles) -> Pruned:
        return bench.one_shot(pruner, level, seed)


ONE_SHOT = RECOVERIES.register(OneShot())
