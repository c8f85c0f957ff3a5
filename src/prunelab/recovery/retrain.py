"""Retraining a pruned network in place, and batch-norm recalibration: what recoveries call."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ..data import Dataset, normalize
from ..pruning.masks import Masks
from ..training import augment, fit
from .base import Bench, PointFiles
from .config import train_config


def retrain(model: nn.Module, bench: Bench, seed: int, files: PointFiles, masks: Masks | None = None,
            pruner=None) -> None:
    """Retrain in place with masks held (or grown by `pruner`, see `fit`), distilling from the
    bench's teacher when `distill` > 0; the training state is saved after every epoch in
    `files.partial` and a saved one is resumed. The sweep evaluates afterwards."""
    card = bench.ctx.card
    fit(model, bench.train_data(), card.mean, card.std, train_config(bench.retrain, seed), bench.device,
        masks=masks, pruner=pruner, evaluate_every=0, on_epoch=bench.on_epoch, teacher=bench.teacher(),
        state_dir=files.partial)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: Iterable[torch.Tensor]) -> None:
    """Re-estimate every batch norm's running mean and variance on `images` (batches of training
    images as the model takes them, on its device).

    The statistics are reset and then averaged over the batches (cumulative average, not a
    momentum); no weight changes. Pruning shifts activations, and stale statistics cost much of
    the accuracy a one-shot point loses.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for batch in images:
            model(batch)
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        model.eval()


def bn_draws(data: Dataset, mean, std, batches: int, batch_size: int, device: torch.device, seed: int = 0,
             augment_images: bool = True) -> Iterator[torch.Tensor]:
    """`batches` batches of `data`'s training images in a seeded order, normalised, on `device`:
    augmented as training augments them (`data.pad`, `data.flip`) unless `augment_images` is off.
    A network trained on padded crops reads its statistics from those (measured on the pretrained
    ResNet-20, unpruned: statistics re-estimated on the plain training images cost 2.8 points of
    top-1, on augmented ones 0.1)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.train), generator=generator)
    for i in range(min(batches, -(-len(order) // batch_size))):
        images = data.train.x[order[i * batch_size:(i + 1) * batch_size]]
        if augment_images:
            images = augment(images, data.pad, data.flip, generator)
        yield normalize(images, mean, std).to(device)
