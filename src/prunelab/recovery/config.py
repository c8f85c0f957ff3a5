"""Retraining settings shared by every recovery that trains, and the training recipe they make."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import setting
from ..training import TrainConfig, check_config
from ..training.plan import parse_sizes


def _modes() -> list[str]:
    from .modes import RETRAIN_MODES

    return RETRAIN_MODES.names()


@dataclass(frozen=True)
class RecoveryConfig:
    """Retraining settings shared by every recovery that trains.

    `retrain` names how the learning rate runs (`recovery/modes/`): "finetune" trains at the
    constant rate `lr`; "rewind" replays a cosine of peak `lr` from epoch `rewind_epoch` to its end
    (`rewind_epoch + epochs`): learning-rate rewinding (Renda, Frankle & Carbin 2020). `distill` > 0
    also matches the dense network's softened outputs (knowledge distillation, Hinton et al. 2015).
    Fields named as in `TrainConfig` are that recipe's, with retraining's own defaults.
    """

    epochs: int = setting(2, "Recovery: retraining epochs per level (ft, gradual) or per round (iter).")
    retrain: str = setting("finetune", "Recovery: how the learning rate runs: finetune (constant lr) or "
                           "rewind (replay a cosine from --rewind-epoch).", choices=_modes)
    lr: float = setting(0.001, "Recovery: fine-tuning lr, or the rewound schedule's peak.")
    rewind_epoch: int = setting(0, "Recovery: epoch of the schedule to rewind to.")
    batch_size: int = setting(128, "Recovery: images per training step.", flag="--train-batch-size")
    momentum: float = setting(0.9, "Recovery: SGD momentum.")
    weight_decay: float = setting(5e-4, "Recovery: SGD weight decay.")
    augment: bool = setting(True, "Recovery: random crop (+flip) of the training images.")
    amp: bool = setting(True, "Recovery: bf16 autocast where the device computes bf16 natively (CUDA; a "
                        "CPU with AMX or AVX512-BF16); weights and evaluation stay float32.")
    compile: bool = setting(False, "Recovery: torch.compile the network being retrained (1.2x the "
                            "images/s on a 2-core CPU; the first step compiles, up to a minute; "
                            "quantized tables are tuned eagerly).")
    sizes: tuple[tuple[int, float], ...] = setting(
        (), "Recovery: progressive resizing of every retraining run, SIZE:FRACTION pairs as 'train "
        "--sizes' takes them (16:0.3,24:0.3: the first 30% of its epochs at 16x16, the next 30% at "
        "24x24, the rest at full size).", flag="--train-sizes", parse=parse_sizes, shown="none")
    bn_batches: int = setting(50, "Recovery 'bn': batches of training images to re-estimate on.")
    bn_augment: bool = setting(True, "Recovery 'bn': augment those images as training does (random crop "
                               "and flip); off re-estimates on them as they are (prunelab before 0.2).")
    gradual_ramp: float = setting(0.75, "Recovery 'gradual': share of the retraining steps over which "
                                  "sparsity rises.")
    gradual_every: int = setting(10, "Recovery 'gradual': steps between mask updates.")
    distill: float = setting(0.0, "Recovery: weight (0-1) of distillation from the dense network's "
                             "outputs during retraining.")
    temperature: float = setting(4.0, "Recovery: distillation temperature.")
    quant_lr: float | None = setting(None, "Quantized '...@<quant>+ft' methods: the learning rate of "
                                     "fine-tuning the codebooks or scales [default: --lr].")
    quant_epochs: int | None = setting(None, "Quantized '...@<quant>+ft' methods: epochs of fine-tuning "
                                       "the codebooks or scales [default: --epochs].")

    def for_quantized(self) -> RecoveryConfig:
        """The recipe that fine-tunes a quantized network's tables: this one at `quant_lr` for
        `quant_epochs`, where they are set."""
        changes = {name: value for name, value in (("lr", self.quant_lr), ("epochs", self.quant_epochs))
                   if value is not None}
        return dataclasses.replace(self, **changes) if changes else self


BN_SETTINGS = ("bn_batches", "bn_augment", "batch_size")
"""The settings batch-norm re-estimation reads."""
TRAINING_SETTINGS = ("epochs", "retrain", "lr", "rewind_epoch", "batch_size", "momentum", "weight_decay",
                     "augment", "amp", "compile", "sizes", "distill", "temperature")
"""The settings every retraining reads (a recovery adds its own, as 'gradual' its schedule's)."""
QUIET = {"amp": True, "compile": False, "sizes": ()}
"""Settings added after run folders existed, with the value they had before (how fast a network
trains, not what it learns, save for rounding)."""


def settings(rc: RecoveryConfig, names: tuple[str, ...]) -> dict:
    """The values of `names` in `rc` (what a recipe records); those of `QUIET` only where they differ
    from their value there, and distillation's only when it is on, so that a run folder from before
    they existed reads the same."""
    out = {n: _plain(getattr(rc, n)) for n in names
           if n not in QUIET or _plain(getattr(rc, n)) != _plain(QUIET[n])}
    if out.get("distill") == 0:
        out.pop("distill"), out.pop("temperature", None)
    return out


def _plain(value):
    """A setting as its stored recipe reads back (JSON: tuples are lists)."""
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


SHARED = tuple(f.name for f in dataclasses.fields(RecoveryConfig)
               if f.name in {g.name for g in dataclasses.fields(TrainConfig)})


def train_config(rc: RecoveryConfig, seed: int) -> TrainConfig:
    """The training recipe of one retraining run: the shared fields, then the mode's schedule."""
    from .modes import RETRAIN_MODES

    mode = RETRAIN_MODES.get(rc.retrain)
    cfg = TrainConfig(**{name: getattr(rc, name) for name in SHARED}, seed=seed)
    cfg = dataclasses.replace(cfg, **mode.schedule(rc))
    check_config(cfg)
    return cfg
