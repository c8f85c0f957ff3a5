"""Training: the recipe, learning-rate schedules (one per file in `schedules/`), the fit loop."""

from __future__ import annotations

import torch
from torch import nn

from ..data import Dataset
from ..data.augment import augment
from .batch import distillation_loss
from .fit import STATE_FILE, History, fit
from .recipe import TrainConfig, check_config, epoch_steps, lr_at
from .schedules import SCHEDULES
from .schedules.cosine import cosine_lr

__all__ = ["SCHEDULES", "STATE_FILE", "History", "TrainConfig", "augment", "check_config", "cosine_lr",
           "distillation_loss", "epoch_steps", "fit", "input_statistics", "lr_at", "new_model"]


def input_statistics(data: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images in [0, 1] units: the normalisation a model
    trained here is given (and records in its metadata)."""
    channels = data.train.x.shape[1]
    x = data.train.x.float().div_(255).transpose(0, 1).reshape(channels, -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def new_model(model_name: str, data: Dataset, cfg: TrainConfig) -> nn.Module:
    """A freshly initialised `model_name` for `data`: initial weights from the recipe's seed, and
    the residual branches' last batch norms at zero when the recipe says so."""
    from ..models import create_model, zero_init_residual

    torch.manual_seed(cfg.seed)
    model = create_model(model_name, len(data.classes), data.train.x.shape[1])
    if cfg.zero_init_residual:
        zero_init_residual(model, model_name)
    return model
