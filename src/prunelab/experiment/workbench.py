"""A checkpoint made ready for computing points: model, card, device, data (loaded when first
needed), the pruning context and the recovery bench."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import torch
from torch import nn

from .. import distributed
from ..data import Dataset, load_dataset, normalize, with_training_set
from ..data.calibration import calibration_images
from ..errors import PrunelabError
from ..io.checkpoint import load_checkpoint
from ..measure import Macs, macs
from ..models import ModelCard
from ..pruning import PruneContext
from ..pruning.calibration import Calibration
from ..recovery import Bench
from .config import SweepConfig
from .runfolder import PROFILE_FILE


def pick_device(name: str) -> torch.device:
    """'auto' is CUDA when there is one, else the CPU."""
    name = distributed.local_device(name)  # under torchrun each process takes its own GPU
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PrunelabError(f"unknown device '{name}'; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrunelabError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    return device


def load_profile(path: str | Path) -> dict:
    """Read a sensitivity profile written by `prunelab sensitivity`, or say what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        path = path / PROFILE_FILE
    try:
        profile = json.loads(path.read_text())
        _ = profile["dense_top1"], profile["layers"].items()
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise PrunelabError(f"cannot read the sensitivity profile {path} ({type(exc).__name__}); "
                            f"run 'prunelab sensitivity ... --out RUN' and pass --sensitivity RUN") from None
    return profile


def check_fits(data: Dataset, card: ModelCard, name: str, classes_match: bool = True) -> None:
    """The data against the network: labels it can predict, image channels and size it takes, and
    (unless `classes_match` is off) as many classes as it has outputs."""
    top, n = int(data.test.y.max()), len(data.classes)
    if top >= card.num_classes:
        raise PrunelabError(f"data '{name}' has labels up to {top} but the checkpoint's model has "
                            f"{card.num_classes} classes; pass the data it was trained on")
    if classes_match and n != card.num_classes:
        raise PrunelabError(f"data '{name}' has {n} classes but the checkpoint's model has "
                            f"{card.num_classes} outputs; pass the data it was trained on, or "
                            f"--no-classes-match if its first {n} outputs are this data's classes")
    if data.test.x.shape[1] != card.in_channels:
        raise PrunelabError(f"data '{name}' has {data.test.x.shape[1]}-channel images, the "
                            f"checkpoint's model takes {card.in_channels}")
    size = card.input_size or card.info.input_size
    h, w = data.test.x.shape[2:4]
    if size is not None and (h, w) != (size, size):
        raise PrunelabError(f"data '{name}' has {h}x{w} images but the checkpoint's {card.model} takes "
                            f"{size}x{size}; pass images of the size it was trained on")


class Workbench:
    """Everything a point is computed with, for one checkpoint under one configuration.

    Args:
        cfg: the sweep's settings (checkpoint, data, pruning and retraining options).
        reads_data: False where no data is loaded (an export from a checkpoint): one image's
            shape is then `input_size` x `input_size`, by default the size the checkpoint
            records or its architecture declares (else 32); otherwise the test images'.
    """

    def __init__(self, cfg: SweepConfig, input_size: int | None = None, reads_data: bool = True):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.model, self.card = load_checkpoint(cfg.checkpoint, cfg.model)
        self.model.to(self.device)
        self.profile = load_profile(cfg.sensitivity) if cfg.sensitivity else None
        self.latency_table = self._latency_table() if cfg.latency_table else None
        self.dense_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        size = input_size or self.card.input_size or self.card.info.input_size or 32
        self._input_shape = None if reads_data else (self.card.in_channels, size, size)
        self.on_epoch = None  # the sweep's hook for the point in flight: (epoch record) -> None
        self.on_layer = None  # and for a slow pruner's progress: (layer, index, layers) -> None

    def _latency_table(self):
        """The --latency-table, checked against this network and, where the points are timed
        (--latency), against the runtime and threads that time them."""
        from ..measure.latency_table import check_table, layer_widths, load_table

        cfg = self.cfg
        return check_table(load_table(cfg.latency_table), cfg.latency_table, self.card.model,
                           layer_widths(self.model), cfg.runtime if cfg.latency else None,
                           cfg.threads if cfg.latency else None)

    @functools.cached_property
    def data(self) -> Dataset:
        """The test data (and its training split), checked against the checkpoint once."""
        data = load_dataset(self.cfg.data, self.cfg.data_root, self.cfg.download)
        check_fits(data, self.card, self.cfg.data, self.cfg.classes_match)
        return data

    @functools.cached_property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised images, labels) of the test split, on the device."""
        x = normalize(self.data.test.x, self.card.mean, self.card.std).to(self.device)
        return x, self.data.test.y.to(self.device)

    @functools.cached_property
    def train(self) -> Dataset:
        """The retraining data: `data`'s training split, or `train_data`'s (exact pixels kept)."""
        if self.cfg.train_data is None:
            data = self.data
        else:
            other = load_dataset(self.cfg.train_data, self.cfg.data_root, self.cfg.download)
            data = with_training_set(self.data, other, self.cfg.train_data)
        if len(data.train) == 0:
            raise PrunelabError(f"{self.cfg.train_data or self.cfg.data} has no training images, and a method "
                                f"here reads them (retraining, batch-norm statistics or calibration); pass "
                                f"--train-data with a training split, or sweep methods that read none")
        return data

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self._input_shape is not None:
            return tuple(self._input_shape)
        return tuple(self.data.test.x.shape[1:])

    @functools.cached_property
    def ctx(self) -> PruneContext:
        cfg = self.cfg
        example = torch.zeros((1, *self.input_shape), device=self.device)
        return PruneContext(self.card, example, prune_classifier=cfg.prune_classifier,
                            layer_cap=cfg.layer_cap, round_to=cfg.round_to, profile=self.profile,
                            latency_table=self.latency_table,
                            calibration=lambda: self.calibration, damp=cfg.damp, block=cfg.obs_block,
                            on_layer=lambda *a: self.on_layer(*a) if self.on_layer else None)

    @functools.cached_property
    def calibration(self) -> Calibration:
        """`calibration` images of the training split (seeded), normalised, on the device."""
        images = calibration_images(self.train.train, self.cfg.calibration, self.cfg.calibration_seed)
        return Calibration(normalize(images, self.card.mean, self.card.std).to(self.device))

    @functools.cached_property
    def prunable(self) -> list[str]:
        return list(self.ctx.prunable(self.model))

    @functools.cached_property
    def dense_macs(self) -> Macs:
        """MACs of the checkpoint's architecture as it runs, counted once: a masked point runs the
        same layers (zeros are multiplied too), and the count does not read the weights' values."""
        return macs(self.model, self.input_shape)

    @functools.cached_property
    def bench(self) -> Bench:
        return Bench(self.model, self.dense_state, self.ctx, self.device, self.cfg.recovery, self.cfg.levels,
                     train_data=lambda: self.train, teacher=lambda: self.teacher,
                     on_epoch=lambda record: self.on_epoch(record) if self.on_epoch else None)

    @functools.cached_property
    def teacher(self) -> nn.Module | None:
        """The dense network that retraining distils from (`distill` > 0), else None."""
        if self.cfg.recovery.distill == 0:
            return None
        teacher = copy.deepcopy(self.model)
        teacher.load_state_dict(self.dense_state)
        return teacher.eval()
