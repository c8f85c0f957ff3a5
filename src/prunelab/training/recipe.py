"""The training recipe: SGD settings, the learning rate as a pure function of the step, validation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import setting
from ..errors import PrunelabError
from .plan import check_sizes, parse_duration, parse_sizes
from .schedules import SCHEDULES


@dataclass(frozen=True)
class TrainConfig:
    """The recipe; defaults are the classic study's: SGD, momentum 0.9, wd 5e-4, lr 0.01 cosine, batch 128.

    The options after `seed` default to what prunelab did before they existed, so a training
    state saved then still resumes under the same recipe.
    """

    epochs: int = setting(30, "Epochs trained by this call.")
    lr: float = setting(0.01, "Peak learning rate.")
    schedule: str = setting("cosine", "Learning-rate schedule: cosine (annealed to 0) or constant.")
    schedule_epochs: int | None = setting(None, "Length of the schedule in epochs [default: --epochs].")
    rewind_epoch: int = setting(0, "Start the schedule this many epochs in (learning-rate rewinding).")
    momentum: float = setting(0.9, "SGD momentum.")
    weight_decay: float = setting(5e-4, "SGD weight decay.")
    batch_size: int = setting(128, "Images per step.")
    augment: bool = setting(True, "Random crop with padding (+ flip where the data allows it).")
    clip_grad: float | None = setting(None, "Largest global L2 norm of the gradient (none: no clipping).")
    amp: bool = setting(True, "bf16 autocast where the device computes bf16 natively (CUDA; a CPU with "
                        "AMX or AVX512-BF16); weights, optimizer and evaluation stay float32.")
    channels_last: bool = setting(True, "NHWC memory format (faster convolutions on GPU and on this CPU).")
    compile: bool = setting(False, "torch.compile the model.")
    distill: float = setting(0.0, "Weight of distillation from a teacher's logits (retraining only).",
                             cli=False)
    temperature: float = setting(4.0, "Softening of both networks' logits for distillation.", cli=False)
    seed: int = setting(0, "Seed for the initial weights, order and augmentation.")
    nesterov: bool = setting(False, "Nesterov momentum.")
    warmup_epochs: float = setting(0.0, "The rate rises linearly from 0 to --lr over this many epochs first.")
    label_smoothing: float = setting(0.0, "Targets are (1 - eps) one-hot + eps uniform over the classes.")
    zero_init_residual: bool = setting(False, "Fresh models: the last batch norm of each residual branch "
                                       "starts at 0.")
    drop_last: bool = setting(False, "Skip each epoch's last partial batch (every step then has one shape).")
    sizes: tuple[tuple[int, float], ...] = setting(
        (), "Progressive resizing: SIZE:FRACTION pairs, e.g. 16:0.4,24:0.3 trains the first 40% of the "
        "epochs on images resized to 16x16, the next 30% at 24x24, the rest at full size.",
        parse=parse_sizes, shown="none")
    time_budget: float | None = setting(None, "Size the schedule to this much time (8h, 90m, 3600s): "
                                        "the epochs that fit, from step times measured before the "
                                        "first; --epochs is then the most it may take.",
                                        parse=parse_duration)
    save_every: float = setting(300.0, "Also save the training state every this many seconds within "
                                "an epoch (0: after every step); not part of the recipe.")


# Settings that do not change what is trained: a state saved under other values still resumes.
NOT_RECIPE = ("save_every",)


def epoch_steps(n_images: int, cfg: TrainConfig) -> int:
    """Optimizer steps in one epoch over `n_images` (the last partial batch counts unless `drop_last`)."""
    return max(1, n_images // cfg.batch_size) if cfg.drop_last else math.ceil(n_images / cfg.batch_size)


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Learning rate at `step` (counted from the start of this run) under `cfg`'s schedule.

    With `rewind_epoch` = k the run replays the schedule from epoch k on: learning-rate rewinding
    (Renda et al. 2020) when the schedule is the one the dense model was trained with. With
    `warmup_epochs` = w the rate first rises linearly over w epochs (step t of W warm-up steps:
    lr (t + 1) / W), and the cosine then runs over the rest of the schedule.
    """
    t = cfg.rewind_epoch * steps_per_epoch + step
    warm = round(cfg.warmup_epochs * steps_per_epoch)
    if t < warm:
        return cfg.lr * (t + 1) / warm
    total = (cfg.schedule_epochs or cfg.epochs) * steps_per_epoch
    return SCHEDULES.get(cfg.schedule).rate(t - warm, total - warm, cfg.lr)


def check_from_scratch(cfg: TrainConfig) -> None:
    """Refuse a recipe that cannot train a network from scratch (`prunelab train`): any that
    `check_config` refuses, and zero epochs (which would save an untrained network)."""
    check_config(cfg)
    if cfg.epochs < 1:
        raise PrunelabError(f"training from scratch needs --epochs >= 1, got {cfg.epochs}")


def check_config(cfg: TrainConfig) -> None:
    """Refuse recipes that cannot train, with what to change."""
    if cfg.epochs < 0 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise PrunelabError(f"training needs epochs >= 0, batch size >= 1 and lr > 0; got epochs "
                            f"{cfg.epochs}, batch size {cfg.batch_size}, lr {cfg.lr}")
    if not (0 <= cfg.weight_decay < float("inf")) or not 0 <= cfg.momentum < 1:
        raise PrunelabError(f"training needs weight decay >= 0 and momentum in [0, 1); got weight decay "
                            f"{cfg.weight_decay}, momentum {cfg.momentum}")
    SCHEDULES.get(cfg.schedule)  # a one-line error naming the schedules there are
    if not 0 <= cfg.distill <= 1 or not cfg.temperature > 0:
        raise PrunelabError(f"distillation needs a weight in [0, 1] and a temperature > 0; got weight "
                            f"{cfg.distill}, temperature {cfg.temperature}")
    length = cfg.schedule_epochs or cfg.epochs
    if cfg.rewind_epoch < 0 or cfg.rewind_epoch > length:
        raise PrunelabError(f"rewind epoch {cfg.rewind_epoch} is outside the schedule's {length} epochs")
    if cfg.warmup_epochs < 0 or (cfg.warmup_epochs > 0 and cfg.warmup_epochs >= length):
        raise PrunelabError(f"warm-up of {cfg.warmup_epochs} epochs must be >= 0 and shorter than the "
                            f"schedule's {length} epochs")
    check_sizes(cfg.sizes)
    if not cfg.save_every >= 0:
        raise PrunelabError(f"save_every must be >= 0 seconds, got {cfg.save_every}")
    if not 0 <= cfg.label_smoothing < 1:
        raise PrunelabError(f"label smoothing must be in [0, 1), got {cfg.label_smoothing}")
