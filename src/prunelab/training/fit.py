"""The fit loop: data resident on the device, masks held exactly, bf16 autocast where the device
computes bf16 natively, resumable after any epoch."""

from __future__ import annotations

import contextlib
import errno
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .. import distributed
from ..data import Dataset, normalization, standardize
from ..data.augment import augment
from ..errors import PrunelabError
from ..io import atomic
from ..measure import evaluate
from ..pruning.masks import Masks, apply_masks
from .batch import distillation_loss
from .plan import size_at
from .recipe import NOT_RECIPE, TrainConfig, check_config, epoch_steps, lr_at

STATE_FILE = "train_state.pt"


@dataclass
class History:
    """Per-epoch records: train loss (nats), train and test top-1 (percent), learning rate at the end."""

    epochs: list[dict] = field(default_factory=list)

    @property
    def test_top1(self) -> float | None:
        return self.epochs[-1]["test_top1"] if self.epochs else None


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 in hardware: a CUDA GPU, or a CPU with AMX or AVX512-BF16
    (on other CPUs oneDNN emulates bf16, slower than float32). Measured on a 2-core Xeon with AMX,
    ResNet-56 training steps: 1.98x the images/s of float32 (`bench/train_speed.py`)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    return any(getattr(torch.cpu, probe, lambda: False)()
               for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def _save_state(folder: Path, state: dict) -> None:
    """Write the state whole or not at all: a temporary file, synced, renamed over the last state
    (an interrupt, a crash or a full disk never leaves half a state); a failed write removes the
    temporary and is one line."""
    buffer = io.BytesIO()  # torch's own file writer turns a failed write into a RuntimeError
    torch.save(state, buffer)
    write_whole(folder / STATE_FILE, buffer.getbuffer(), folder / (STATE_FILE + ".tmp"))


def write_whole(path: Path, data, tmp: Path | None = None) -> None:
    """Write bytes whole or not at all: a temporary file beside `path`, synced, renamed over it; a
    failed write (a full disk) removes the temporary and is one line naming `path`."""
    try:
        atomic.write_whole(path, data, tmp)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = ("free space on the disk holding it" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else "fix that")
        raise PrunelabError(f"cannot write {path}: {reason}; {hint} and run the same command again "
                            f"(training resumes from the last state saved)") from None


def load_state(path: Path, device: torch.device) -> dict:
    """A saved training state; one that cannot be read is one line, never discarded here (it may
    hold hours of training; since states are written whole, a damaged one is not a mere kill)."""
    start_over = "delete it to train from the first epoch again (nothing else is lost)"
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except OSError as exc:
        raise PrunelabError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # torch.load raises whatever its unzipping and unpickling meet
        first = (str(exc).splitlines() or [""])[0][:100]
        raise PrunelabError(f"{path} cannot be read as a training state ({type(exc).__name__}: {first}); "
                            f"{start_over}") from None
    keys = ("model", "optimizer", "generator", "masks", "epoch", "history", "config")
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise PrunelabError(f"{path} is not a prunelab training state (lacks {', '.join(missing)}); "
                            f"{start_over}")
    return saved


def _check_same_recipe(path: Path, saved: dict, now: dict) -> None:
    """A saved training state resumes only under the recipe it was saved with; a setting that
    exists on one side only (a newer or older prunelab) is not a difference."""
    diff = sorted(k for k in saved.keys() & now.keys() - set(NOT_RECIPE) if saved[k] != now[k])
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
    folder: Path | None = None  # where the state is saved (None: nowhere)
    partial: dict | None = None  # an epoch saved part-way: its order, the steps done, its sums
    clock: dict = field(default_factory=lambda: {"seconds": 0.0, "cpu_seconds": 0.0})
    ticks: tuple[float, float] = field(default_factory=lambda: (time.perf_counter(), time.process_time()))
    last_save: float = field(default_factory=time.perf_counter)

    def tick(self) -> dict:
        """The training clock (wall and this process's CPU seconds, over every resume) brought up
        to now."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.clock = {"seconds": self.clock["seconds"] + wall - self.ticks[0],
                      "cpu_seconds": self.clock["cpu_seconds"] + cpu - self.ticks[1]}
        self.ticks = (wall, cpu)
        return self.clock

    def save(self, cfg: TrainConfig, epoch: int, partial: dict | None = None) -> None:
        """Save the state: `epoch` epochs done, and `partial` of the next (or None)."""
        self.tick()
        if self.folder is not None and (not self.ddp or distributed.is_main()):  # DDP: one copy
            _save_state(self.folder, {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                                      "generator": self.gen.get_state(), "masks": self.masks, "epoch": epoch,
                                      "history": self.history.epochs, "config": asdict(cfg),
                                      "partial": partial, "clock": self.clock})
        self.last_save = time.perf_counter()


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
    history, first_epoch, partial, clock = History(), 0, None, None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / STATE_FILE).exists():
            saved = load_state(folder / STATE_FILE, device)
            _check_same_recipe(folder / STATE_FILE, saved["config"], asdict(cfg))
            try:
                model.load_state_dict(saved["model"])
                opt.load_state_dict(saved["optimizer"])
                gen.set_state(saved["generator"].cpu())
            except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
                first = (str(exc).splitlines() or [""])[0][:100]
                raise PrunelabError(f"{folder / STATE_FILE} does not fit this training ({first}); delete "
                                    f"it to train from the first epoch again") from None
            masks = saved["masks"] if saved["masks"] is not None else masks
            history.epochs, first_epoch = saved["history"], saved["epoch"]
            partial, clock = saved.get("partial"), saved.get("clock")
    if masks is not None:
        masks = {name: m.to(device) for name, m in masks.items()}
        apply_masks(model, masks)
    # A parametrized network (quantized tables being tuned) stays eager: every parametrized module
    # is a class of its own, so torch.compile would recompile for each block and then give up.
    parametrized = any(parametrize.is_parametrized(m) for m in model.modules())
    step_model = torch.compile(model) if cfg.compile and not parametrized else model
    ddp = distributed_data and distributed.world_size() > 1
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        step_model = DistributedDataParallel(step_model, device_ids=ids)
    share = (distributed.rank(), distributed.world_size()) if ddp else (0, 1)
    run = _Run(model, step_model, opt, gen, masks, history, first_epoch, share, ddp, folder, partial)
    if clock is not None:
        run.clock = dict(clock)
    return run


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
    full = x_train.shape[-1]
    for epoch in range(run.first_epoch, cfg.epochs):
        size = size_at(epoch, cfg.epochs, cfg.sizes, full)
        record = _epoch(run, epoch, x_train, y_train, (m, s), data, cfg, pruner, on_step, teacher, size)
        if evaluate_every and ((epoch + 1) % evaluate_every == 0 or epoch + 1 == cfg.epochs):
            ev = evaluate(model, x_test, y_test)
            record.update(test_top1=ev.top1, test_loss=ev.loss)
        record.update(run.tick())  # in the record the state saves, not only in the one reported
        run.history.epochs.append(record)
        run.save(cfg, epoch + 1)
        if on_epoch is not None:
            on_epoch(record)
    return run.history


def _epoch(run: _Run, epoch: int, x_train: torch.Tensor, y_train: torch.Tensor, norm, data: Dataset,
           cfg: TrainConfig, pruner, on_step, teacher, size: int) -> dict:
    """One epoch of steps at `size` x `size` pixels, resumed part-way where the state was saved
    part-way; returns its record (train loss and top-1 read once, at the end). The state is also
    saved every `cfg.save_every` seconds."""
    model, device = run.model, x_train.device
    model.train()
    per_epoch = epoch_steps(len(y_train), cfg)
    partial, run.partial = run.partial, None
    if partial is not None:  # the order, steps and sums of this epoch as saved
        order, first = partial["order"].to(device), partial["step"]
        loss_sum, right = partial["loss_sum"].to(device), partial["right"].to(device)
        seen = partial["seen"]
    else:
        order = torch.randperm(len(y_train), generator=run.gen, device=run.gen.device).to(device)
        loss_sum = torch.zeros((), device=device)  # on the device: no sync per step
        right = torch.zeros((), device=device)
        first, seen = 0, 0
    bf16 = cfg.amp and native_bf16(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    lr = lr_at(max(epoch * per_epoch + first - 1, 0), per_epoch, cfg)
    share, shares = run.share
    for i in range(first, per_epoch):
        step = epoch * per_epoch + i
        if pruner is not None:
            new = pruner(step, model, run.masks)
            if new is not None:
                run.masks = {name: mk.to(device) for name, mk in new.items()}
                apply_masks(model, run.masks)
        idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size][share::shares]
        xb = augment(x_train[idx], data.pad, data.flip, run.gen) if cfg.augment else x_train[idx]
        xb, yb = standardize(xb, *norm), y_train[idx]
        if size != xb.shape[-1]:
            xb = F.interpolate(xb, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
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
        if i + 1 < per_epoch and time.perf_counter() - run.last_save >= cfg.save_every:
            run.save(cfg, epoch, {"order": order.cpu(), "step": i + 1, "loss_sum": loss_sum.cpu(),
                                  "right": right.cpu(), "seen": seen})
    return {"epoch": epoch + 1, "train_loss": float(loss_sum) / max(seen, 1),
            "train_top1": 100.0 * float(right) / max(seen, 1), "lr": lr, "size": size,
            "precision": "bf16" if bf16 else "fp32"}
