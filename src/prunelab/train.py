"""Training: SGD with momentum and a cosine schedule, GPU-side augmentation, masks held, resumable."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, normalize
from .errors import PrunelabError
from .metrics import evaluate
from .pruning.masks import Masks, apply_masks

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """The recipe; defaults are the classic study's."""

    epochs: int = 30
    lr: float = 0.01  # peak learning rate, annealed to 0 by a cosine over all steps
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128  # images per step
    augment: bool = True  # random crop with padding (+ flip where the data allows it)
    seed: int = 0


@dataclass
class History:
    """Per-epoch record: train loss (nats), train and test top-1 (percent), learning rate at end."""

    epochs: list[dict] = field(default_factory=list)

    @property
    def test_top1(self) -> float | None:
        return self.epochs[-1]["test_top1"] if self.epochs else None


def cosine_lr(step: int, total_steps: int, base_lr: float) -> float:
    """Learning rate at `step` of `total_steps`: a half cosine from `base_lr` down to 0."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def augment(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flips, on x's device.

    Args:
        x: uint8 or float (B, C, H, W).
        pad: padding in pixels on each side (0 = no crop).
        flip: flip half the images left-right.
        generator: CPU generator for the random offsets.
    """
    b, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        flips = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return x


def _save_state(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, epoch: int,
                history: History, cfg: TrainConfig) -> None:
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
             "history": history.epochs, "config": asdict(cfg)}
    tmp = folder / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / STATE_FILE)  # an interrupt never leaves half a state


def fit(model: nn.Module, data: Dataset, mean, std, cfg: TrainConfig, device: torch.device,
        masks: Masks | None = None, state_dir: str | Path | None = None,
        on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> History:
    """Train `model` in place on `data.train`, evaluating on `data.test` after every epoch.

    Args:
        model: the network (moved to `device`).
        data: uint8 images; augmentation follows `data.pad` and `data.flip`.
        mean, std: the model's input normalisation.
        cfg: the recipe.
        device: where to train.
        masks: pruning masks to hold: masked weights are zeroed after every optimizer step, so
            they stay exactly zero under momentum and weight decay.
        state_dir: if given, the training state is saved there after every epoch and a
            matching saved state is resumed from.
        on_step: called with (epoch, step in epoch, loss) after each step.
        on_epoch: called with the epoch's record.

    Returns:
        the per-epoch history.
    """
    if cfg.epochs < 0 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise PrunelabError("training needs epochs >= 0, batch size >= 1 and a positive lr")
    torch.manual_seed(cfg.seed)
    model.to(device)
    if masks is not None:
        apply_masks(model, masks)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    history, first_epoch = History(), 0
    folder = Path(state_dir) if state_dir is not None else None
    if folder is not None and (folder / STATE_FILE).exists():
        saved = torch.load(folder / STATE_FILE, map_location=device, weights_only=True)
        if saved["config"] == asdict(cfg):
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            history.epochs, first_epoch = saved["history"], saved["epoch"]

    x_train, y_train = data.train.x.to(device), data.train.y.to(device)
    x_test = normalize(data.test.x, mean, std).to(device)
    y_test = data.test.y.to(device)
    steps_per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(first_epoch):  # replay the generator so a resumed run sees the same batches
        torch.randperm(len(y_train), generator=gen)
    for epoch in range(first_epoch, cfg.epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=gen).to(device)
        seen, loss_sum, right = 0, 0.0, 0
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb = x_train[idx]
            if cfg.augment:
                xb = augment(xb, data.pad, data.flip, gen)
            xb, yb = normalize(xb, mean, std), y_train[idx]
            lr = cosine_lr(epoch * steps_per_epoch + i, total, cfg.lr)
            for group in opt.param_groups:
                group["lr"] = lr
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if masks is not None:
                apply_masks(model, masks)
            seen += len(yb)
            loss_sum += loss.item() * len(yb)
            right += int((logits.argmax(1) == yb).sum())
            if on_step is not None:
                on_step(epoch, i, loss.item())
        ev = evaluate(model, x_test, y_test)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_top1": 100.0 * right / seen,
                  "test_top1": ev.top1, "test_loss": ev.loss, "lr": lr}
        history.epochs.append(record)
        if folder is not None:
            _save_state(folder, model, opt, epoch + 1, history, cfg)
        if on_epoch is not None:
            on_epoch(record)
    return history
