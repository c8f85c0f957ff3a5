"""Winning accuracy back after pruning: batch-norm recalibration, fine-tuning, iterative and gradual
schedules. A sweep method is `<pruning method>[+<recovery>]`, e.g. `global+iter`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import Dataset, normalize
from .errors import PrunelabError, unknown
from .pruning.masks import Masks
from .pruning.methods import CHANNELS, NM, Method, compute_masks, get_method
from .pruning.schedules import cubic
from .train import TrainConfig, check_config, fit


@dataclass(frozen=True)
class Recovery:
    """How a pruned network gets its accuracy back.

    Attributes:
        name: the suffix after '+' in a sweep method.
        trains: it runs SGD on the training split (so its result depends on the seed).
        chained: each level starts from the previous level's retrained weights and masks.
        description: one line for listings and reports.
    """

    name: str
    trains: bool
    chained: bool
    description: str


RECOVERIES: dict[str, Recovery] = {
    r.name: r
    for r in (
        Recovery("none", False, False, "one-shot: prune and evaluate"),
        Recovery("bn", False, False, "one-shot, then re-estimate batch-norm statistics (no weight update)"),
        Recovery("ft", True, False, "one-shot from the dense weights, then retrain"),
        Recovery("iter", True, True, "iterative: prune the last level's retrained network further, retrain"),
        Recovery("gradual", True, False, "gradual: sparsity rises along a cubic schedule while retraining"),
    )
}


@dataclass(frozen=True)
class RecoveryConfig:
    """Retraining settings shared by every recovery that trains.

    `retrain="finetune"` trains at the constant learning rate `lr`; `retrain="rewind"` replays a
    cosine schedule of peak `lr` from epoch `rewind_epoch` to its end (`rewind_epoch + epochs`):
    learning-rate rewinding (Renda, Frankle & Carbin 2020). `distill` > 0 also matches the dense
    network's softened outputs (knowledge distillation, Hinton et al. 2015).
    """

    epochs: int = 2  # retraining epochs per level (ft, gradual) or per round (iter)
    retrain: str = "finetune"  # "finetune" or "rewind"
    lr: float = 0.001  # finetune: the constant rate; rewind: the schedule's peak
    rewind_epoch: int = 0  # rewind: where in the replayed schedule retraining starts
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    bn_batches: int = 50  # batches of training images for batch-norm recalibration
    gradual_ramp: float = 0.75  # gradual: share of the retraining steps over which sparsity rises
    gradual_every: int = 10  # gradual: steps between mask updates
    distill: float = 0.0  # weight of distillation from the dense network (0 = labels only)
    temperature: float = 4.0  # distillation temperature


RETRAIN = ("finetune", "rewind")


def parse_method(spec: str) -> tuple[Method, Recovery]:
    """'global+iter' -> (the global method, the iterative recovery); 'layerwise' -> one-shot."""
    name, _, recovery = spec.partition("+")
    method = get_method(name)
    if recovery and recovery not in RECOVERIES:
        raise unknown("recovery", recovery, RECOVERIES)
    rec = RECOVERIES[recovery or "none"]
    if rec.name == "gradual" and method.kind == CHANNELS:
        raise PrunelabError(f"'{spec}': channel pruning has no gradual schedule in prunelab (a "
                            f"network cannot shrink mid-epoch); use '{name}+iter' (prune further "
                            f"level by level, retraining between) or '{name}+ft'")
    if rec.chained or rec.name == "gradual":
        if method.kind == NM:
            raise PrunelabError(f"'{spec}': N:M has one fixed sparsity, so it has no schedule; use "
                                f"'{name}+ft' or '{name}+bn'")
    return method, rec


def train_config(rc: RecoveryConfig, seed: int) -> TrainConfig:
    """The TrainConfig of one retraining run."""
    if rc.retrain not in RETRAIN:
        raise PrunelabError(f"unknown retraining '{rc.retrain}'; choose {' or '.join(RETRAIN)}")
    common = dict(epochs=rc.epochs, lr=rc.lr, momentum=rc.momentum, weight_decay=rc.weight_decay,
                  batch_size=rc.batch_size, augment=rc.augment, distill=rc.distill,
                  temperature=rc.temperature, seed=seed)
    if rc.retrain == "finetune":
        cfg = TrainConfig(schedule="constant", **common)
    else:
        cfg = TrainConfig(schedule="cosine", rewind_epoch=rc.rewind_epoch,
                          schedule_epochs=rc.rewind_epoch + rc.epochs, **common)
    check_config(cfg)
    return cfg


@torch.no_grad()
def recalibrate_bn(model: nn.Module, data: Dataset, mean, std, batches: int, batch_size: int,
                   device: torch.device, seed: int = 0) -> None:
    """Re-estimate every batch norm's running mean and variance on training images.

    The statistics are reset and then averaged over `batches` batches (cumulative average, not
    a momentum); no weight changes. Pruning shifts activations, and stale statistics cost much
    of the accuracy a one-shot point loses.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))
    for i in range(min(batches, -(-len(order) // batch_size))):
        idx = order[i * batch_size:(i + 1) * batch_size]
        model(normalize(data.train.x[idx], mean, std).to(device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def gradual_pruner(method: Method, model: nn.Module, names: list[str], final: float, seed: int,
                   total_steps: int, rc: RecoveryConfig, layer_cap: float | None,
                   profile: dict | None = None):
    """A `fit` pruner that raises sparsity along the cubic schedule, from 0 to `final`.

    It grows the masks in force, so a resumed run (whose masks come from its saved state)
    continues the schedule where it stopped.
    """
    params = dict(model.named_parameters())
    state: dict = {"level": None}
    ramp = max(1, int(rc.gradual_ramp * total_steps))

    def prune(step: int, _model: nn.Module, masks: Masks | None) -> Masks | None:
        level = cubic(step, final, begin=0, ramp_steps=ramp, every=rc.gradual_every)
        if level == state["level"]:
            return None
        state["level"] = level
        weights = {n: params[n].detach() for n in names}
        return compute_masks(method, weights, level, seed, prior=masks, layer_cap=layer_cap,
                             profile=profile)

    return prune


def retrain(model: nn.Module, data: Dataset, mean, std, rc: RecoveryConfig, seed: int,
            device: torch.device, masks: Masks | None = None, pruner=None, on_epoch=None,
            teacher: nn.Module | None = None, state_dir: str | Path | None = None) -> None:
    """Retrain in place with masks held (or grown by `pruner`), distilling from `teacher` when
    `rc.distill` > 0; the sweep evaluates afterwards. With `state_dir` the training state is
    saved after every epoch there and a saved one is resumed."""
    fit(model, data, mean, std, train_config(rc, seed), device, masks=masks, pruner=pruner,
        evaluate_every=0, on_epoch=on_epoch, teacher=teacher, state_dir=state_dir)
