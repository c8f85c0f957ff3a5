"""Gradual pruning (Zhu & Gupta 2017): retrain from dense while sparsity rises along a cubic
schedule to the level; the masks only grow."""

from __future__ import annotations

from torch import nn

from ...pruning import MaskPruner, Pruned, Pruner
from ...pruning.masks import Masks
from ...pruning.schedules import cubic
from ...training import epoch_steps
from ..base import RECOVERIES, Bench, PointFiles, Recovery
from ..config import TRAINING_SETTINGS, train_config
from ..retrain import retrain


class Gradual(Recovery):
    name = "gradual"
    description = "gradual: sparsity rises along a cubic schedule while retraining"
    trains = True
    settings = (*TRAINING_SETTINGS, "gradual_ramp", "gradual_every")

    def refusal(self, pruner: Pruner) -> str | None:
        if pruner.shrinks:
            return (f"'{pruner.name}+gradual': channel pruning has no gradual schedule in prunelab (a "
                    f"network cannot shrink mid-epoch); use '{pruner.name}+iter' (prune further level "
                    f"by level, retraining between) or '{pruner.name}+ft'")
        if pruner.fixed_level is not None:
            return (f"'{pruner.name}+gradual': N:M has one fixed sparsity, so it has no schedule; use "
                    f"'{pruner.name}+ft' or '{pruner.name}+bn'")
        if not isinstance(pruner, MaskPruner):
            return (f"'{pruner.name}+gradual': {pruner.name} prunes from calibration images all at once, not "
                    f"step by step; use '{pruner.name}+iter' or '{pruner.name}+ft'")
        return None

    def apply(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles) -> Pruned:
        model = bench.fresh()
        ctx = bench.ctx.but(seed=seed)
        recipe = train_config(bench.retrain, seed)
        steps = bench.retrain.epochs * epoch_steps(len(bench.train_data().train), recipe)
        ramp = max(1, int(bench.retrain.gradual_ramp * steps))
        last: dict = {"level": None}

        def grow(step: int, _model: nn.Module, masks: Masks | None) -> Masks | None:
            """Masks at this step's level, grown from those in force: a resumed run (whose masks
            come from its saved state) continues the schedule where it stopped."""
            now = cubic(step, level, begin=0, ramp_steps=ramp, every=bench.retrain.gradual_every)
            if now == last["level"]:
                return None
            last["level"] = now
            return pruner.masks(pruner.weights(model, ctx), now, ctx.but(prior=masks))

        retrain(model, bench, seed, files, pruner=grow)
        return Pruned(model)


RECOVERIES.register(Gradual())
