"""Training and fine-tuning: SGD, learning rate as a pure function of the step, data and augmentation
resident on the device, masks held exactly, bf16 autocast on GPU, resumable after any epoch."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .data import Dataset, normalization, standardize
from .errors import PrunelabError
from .metrics import evaluate
from .pruning.masks import Masks, apply_masks

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """The recipe; defaults are the classic study's: SGD, momentum 0.9, wd 5e-4, lr 0.01 cosine, batch 128.

    The options after `seed` default to what prunelab did before they existed, so a training
    state saved then still resumes under the same recipe.
    """

    epochs: int = 30  # epochs trained by this call
    lr: float = 0.01  # peak learning rate
    schedule: str = "cosine"  # "cosine" (annealed to 0) or "constant"
    schedule_epochs: int | None = None  # length of the cosine in epochs (default: epochs)
    rewind_epoch: int = 0  # start the schedule this many epochs in (learning-rate rewinding)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128  # images per step
    augment: bool = True  # random crop with padding (+ flip where the data allows it)
    clip_grad: float | None = None  # max global L2 norm of the gradient, None = no clipping
    amp: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # NHWC memory format (faster convolutions on GPU and on this CPU)
    compile: bool = False  # torch.compile the model
    distill: float = 0.0  # weight of distillation from a teacher's logits (0 = labels only)
    temperature: float = 4.0  # softening of both networks' logits for distillation
    seed: int = 0
    nesterov: bool = False  # Nesterov momentum
    warmup_epochs: float = 0.0  # the rate rises linearly from 0 to `lr` over this many epochs first
    label_smoothing: float = 0.0  # eps: targets are (1 - eps) one-hot + eps uniform over the classes
    zero_init_residual: bool = False  # fresh models: the last batch norm of each residual branch starts at 0
    drop_last: bool = False  # skip each epoch's last partial batch (every step then has one shape)


@dataclass
class History:
    """Per-epoch records: train loss (nats), train and test top-1 (percent), learning rate at the end."""

    epochs: list[dict] = field(default_factory=list)

    @property
    def test_top1(self) -> float | None:
        return self.epochs[-1]["test_top1"] if self.epochs else None


def cosine_lr(step: int, total_steps: int, base_lr: float) -> float:
    """Learning rate at `step` of `total_steps`: a half cosine from `base_lr` down to 0."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


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
    if cfg.schedule == "constant":
        return cfg.lr
    total = (cfg.schedule_epochs or cfg.epochs) * steps_per_epoch
    return cosine_lr(t - warm, total - warm, cfg.lr)


SCHEDULES = ("cosine", "constant")


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      weight: float, temperature: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """(1 - weight) * cross-entropy + weight * T^2 * KL(teacher || student), both softened by T.

    Knowledge distillation (Hinton, Vinyals & Dean 2015): the T^2 keeps the soft term's gradient
    on the scale of the hard one. weight 0 is plain cross-entropy (with `label_smoothing`).
    """
    hard = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if weight == 0:
        return hard
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - weight) * hard + weight * temperature ** 2 * soft


def augment(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flips, in batch on x's device.

    Args:
        x: uint8 or float (B, C, H, W).
        pad: padding in pixels on each side (0 = no crop).
        flip: flip half the images left-right.
        generator: a generator on x's device, so no random number crosses to or from the host.
    """
    b, _, h, w = x.shape
    device = x.device
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=generator.device).to(device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=generator.device).to(device)
        rows = (oy[:, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=device))[:, None, None, :]
        batch = torch.arange(b, device=device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        flips = (torch.rand(b, generator=generator, device=generator.device) < 0.5).to(device)
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return x


def check_config(cfg: TrainConfig) -> None:
    """Refuse recipes that cannot train, with what to change."""
    if cfg.epochs < 0 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise PrunelabError(f"training needs epochs >= 0, batch size >= 1 and lr > 0; got epochs "
                            f"{cfg.epochs}, batch size {cfg.batch_size}, lr {cfg.lr}")
    if cfg.schedule not in SCHEDULES:
        raise PrunelabError(f"unknown schedule '{cfg.schedule}'; choose {' or '.join(SCHEDULES)}")
    if not 0 <= cfg.distill <= 1 or not cfg.temperature > 0:
        raise PrunelabError(f"distillation needs a weight in [0, 1] and a temperature > 0; got weight "
                            f"{cfg.distill}, temperature {cfg.temperature}")
    length = cfg.schedule_epochs or cfg.epochs
    if cfg.rewind_epoch < 0 or cfg.rewind_epoch > length:
        raise PrunelabError(f"rewind epoch {cfg.rewind_epoch} is outside the schedule's {length} epochs")
    if cfg.warmup_epochs < 0 or (cfg.warmup_epochs > 0 and cfg.warmup_epochs >= length):
        raise PrunelabError(f"warm-up of {cfg.warmup_epochs} epochs must be >= 0 and shorter than the "
                            f"schedule's {length} epochs")
    if not 0 <= cfg.label_smoothing < 1:
        raise PrunelabError(f"label smoothing must be in [0, 1), got {cfg.label_smoothing}")


def _save_state(folder: Path, state: dict) -> None:
    tmp = folder / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / STATE_FILE)  # an interrupt never leaves half a state


def _check_same_recipe(path: Path, saved: dict, now: dict) -> None:
    """A saved training state resumes only under the recipe it was saved with; a setting that
    exists on one side only (a newer or older prunelab) is not a difference."""
    diff = sorted(k for k in saved.keys() & now.keys() if saved[k] != now[k])
    if diff:
        changes = ", ".join(f"{k} {saved[k]} -> {now[k]}" for k in diff)
        raise PrunelabError(f"{path} holds training saved under another recipe ({changes}); pass the "
                            f"same options to resume it, or delete the file to start over")


@dataclass
class _Run:
    """What one call of `fit` trains with, set up once: model, optimizer, random state, data on
    the device, and the masks in force (on the device too: they are applied every step)."""

    model: nn.Module
    step_model: nn.Module  # what the steps call: the model, compiled or wrapped by DDP
    opt: torch.optim.Optimizer
    gen: torch.Generator
    masks: Masks | None
    history: History
    first_epoch: int
    share: tuple[int, int]  # (this process, processes): DDP splits every batch
    ddp: bool


def _setup(model: nn.Module, cfg: TrainConfig, device: torch.device, masks: Masks | None,
           folder: Path | None, distributed_data: bool, teacher: nn.Module | None) -> _Run:
    if cfg.distill > 0 and teacher is None:
        raise PrunelabError("distillation asked for (distill > 0) but no teacher network was given")
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: pick kernels once
    for net in [model] + ([teacher] if cfg.distill > 0 else []):
        net.to(device)
        if cfg.channels_last:
            net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # on the CPU: the stream of old
    history, first_epoch = History(), 0
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / STATE_FILE).exists():
            saved = torch.load(folder / STATE_FILE, map_location=device, weights_only=True)
            _check_same_recipe(folder / STATE_FILE, saved["config"], asdict(cfg))
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            gen.set_state(saved["generator"].cpu())
            masks = saved["masks"] if saved["masks"] is not None else masks
            history.epochs, first_epoch = saved["history"], saved["epoch"]
    if masks is not None:
        masks = {name: m.to(device) for name, m in masks.items()}
        apply_masks(model, masks)
    step_model = torch.compile(model) if cfg.compile else model
    ddp = distributed_data and distributed.world_size() > 1
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        step_model = DistributedDataParallel(step_model, device_ids=ids)
    share = (distributed.rank(), distributed.world_size()) if ddp else (0, 1)
    return _Run(model, step_model, opt, gen, masks, history, first_epoch, share, ddp)


def fit(model: nn.Module, data: Dataset, mean, std, cfg: TrainConfig, device: torch.device,
        masks: Masks | None = None,
        pruner: Callable[[int, nn.Module, Masks | None], Masks | None] | None = None,
        state_dir: str | Path | None = None, evaluate_every: int = 1, distributed_data: bool = False,
        on_step: Callable[[int, int, torch.Tensor], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None, teacher: nn.Module | None = None) -> History:
    """Train `model` in place on `data.train`, evaluating on `data.test`.

    Images stay uint8 on the device and are augmented there in batch, with a generator on the
    device: no step waits for the host. On CUDA, cuDNN's autotuner is switched on (globally).

    Args:
        model: the network (moved to `device`).
        data: uint8 images; augmentation follows `data.pad` and `data.flip`.
        mean, std: the model's input normalisation, per channel.
        cfg: the recipe.
        device: where to train.
        masks: pruning masks to hold: masked weights are zeroed after every optimizer step, so
            they stay exactly zero under momentum and weight decay.
        pruner: called as pruner(global step, model, masks in force) before every step; masks it
            returns replace `masks` from then on (gradual pruning). It must only grow them. On a
            resume the masks in force are the saved ones.
        state_dir: if given, the training state (weights, optimizer, masks, random state) is
            saved there after every epoch, and a saved state is resumed (one saved under another
            recipe is an error, never silently started over).
        evaluate_every: evaluate on the test split every this many epochs and after the last
            (0: never; the caller evaluates).
        distributed_data: under torchrun, train one model with PyTorch DDP: every process takes
            its share of each batch (the batch size stays global) and gradients are averaged;
            only the first process saves the training state.
        on_step: called with (epoch, step in epoch, loss tensor) after each step; reading the
            loss (`.item()`) waits for the device, so callers should do it sparingly.
        on_epoch: called with the epoch's record.
        teacher: the network distilled from when `cfg.distill` > 0 (e.g. the dense model, for a
            pruned one); it sees the same augmented batches and is never updated.

    Returns:
        the per-epoch history.
    """
    check_config(cfg)
    folder = Path(state_dir) if state_dir is not None else None
    run = _setup(model, cfg, device, masks, folder, distributed_data, teacher)
    x_train, y_train = data.train.x.to(device), data.train.y.to(device)
    m, s = normalization(mean, std, x_train.shape[1], device)
    x_test, y_test = standardize(data.test.x.to(device), m, s), data.test.y.to(device)
    if cfg.channels_last:
        x_test = x_test.contiguous(memory_format=torch.channels_last)
    for epoch in range(run.first_epoch, cfg.epochs):
        record = _epoch(run, epoch, x_train, y_train, (m, s), data, cfg, pruner, on_step, teacher)
        if evaluate_every and ((epoch + 1) % evaluate_every == 0 or epoch + 1 == cfg.epochs):
            ev = evaluate(model, x_test, y_test)
            record.update(test_top1=ev.top1, test_loss=ev.loss)
        run.history.epochs.append(record)
        if folder is not None and (not run.ddp or distributed.is_main()):  # DDP: one copy of the state
            _save_state(folder, {"model": model.state_dict(), "optimizer": run.opt.state_dict(),
                                 "generator": run.gen.get_state(), "masks": run.masks, "epoch": epoch + 1,
                                 "history": run.history.epochs, "config": asdict(cfg)})
        if on_epoch is not None:
            on_epoch(record)
    return run.history


def _epoch(run: _Run, epoch: int, x_train: torch.Tensor, y_train: torch.Tensor, norm, data: Dataset,
           cfg: TrainConfig, pruner, on_step, teacher) -> dict:
    """One epoch of steps; returns its record (train loss and top-1 read once, at the end)."""
    model, device = run.model, x_train.device
    model.train()
    per_epoch = epoch_steps(len(y_train), cfg)
    order = torch.randperm(len(y_train), generator=run.gen, device=run.gen.device).to(device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.amp
                else contextlib.nullcontext())
    loss_sum = torch.zeros((), device=device)  # on the device: no sync per step
    right = torch.zeros((), device=device)
    seen, lr = 0, cfg.lr
    share, shares = run.share
    for i in range(per_epoch):
        step = epoch * per_epoch + i
        if pruner is not None:
            new = pruner(step, model, run.masks)
            if new is not None:
                run.masks = {name: mk.to(device) for name, mk in new.items()}
                apply_masks(model, run.masks)
        idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size][share::shares]
        xb = augment(x_train[idx], data.pad, data.flip, run.gen) if cfg.augment else x_train[idx]
        xb, yb = standardize(xb, *norm), y_train[idx]
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step, per_epoch, cfg)
        for group in run.opt.param_groups:
            group["lr"] = lr
        with autocast:
            logits = run.step_model(xb)
            soft = None
            if cfg.distill > 0:
                with torch.no_grad():
                    soft = teacher(xb).float()
            loss = distillation_loss(logits.float(), soft, yb, cfg.distill, cfg.temperature,
                                     cfg.label_smoothing)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        run.opt.step()
        if run.masks is not None:
            apply_masks(model, run.masks)
        seen += len(yb)
        loss_sum += loss.detach() * len(yb)
        right += (logits.argmax(1) == yb).sum()
        if on_step is not None:
            on_step(epoch, i, loss.detach())
    return {"epoch": epoch + 1, "train_loss": float(loss_sum) / seen,
            "train_top1": 100.0 * float(right) / seen, "lr": lr}


def input_statistics(data: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images in [0, 1] units: the normalisation a model
    trained here is given (and records in its metadata)."""
    channels = data.train.x.shape[1]
    x = data.train.x.float().div_(255).transpose(0, 1).reshape(channels, -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def new_model(model_name: str, data: Dataset, cfg: TrainConfig) -> nn.Module:
    """A freshly initialised `model_name` for `data`: initial weights from the recipe's seed, and
    the residual branches' last batch norms at zero when the recipe says so."""
    from .models import create_model, zero_init_residual

    torch.manual_seed(cfg.seed)
    model = create_model(model_name, len(data.classes), data.train.x.shape[1])
    if cfg.zero_init_residual:
        zero_init_residual(model, model_name)
    return model
