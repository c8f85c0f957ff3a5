"""A checkpoint made ready for computing points: model, card, device, data (loaded when first
needed), the pruning context and the recovery bench."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .. import distributed
from ..data import Dataset, ImageSet, load_dataset, with_training_set
from ..data.folder import FolderSource, folder_splits, is_image_folder, memory_allowance, training_set
from ..data.source import Source, TensorSource
from ..errors import PrunelabError
from ..io.checkpoint import load_checkpoint
from ..measure import Evaluation, Macs, evaluate_batches, macs
from ..models import ModelCard
from ..pruning import PruneContext
from ..pruning.calibration import Calibration
from ..recovery import Bench
from ..recovery.retrain import bn_draws
from .config import SweepConfig
from .runfolder import PROFILE_FILE
from .sharing import evaluate_shared


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


def check_fits(data: Source, card: ModelCard, name: str, classes_match: bool = True) -> None:
    """The test data against the network: labels it can predict, image channels and size it
    takes, and (unless `classes_match` is off) as many classes as it has outputs."""
    top = data.max_label()
    n = len(data.classes) if data.classes is not None else card.num_classes
    if top >= card.num_classes:
        raise PrunelabError(f"data '{name}' has labels up to {top} but the checkpoint's model has "
                            f"{card.num_classes} classes; pass the data it was trained on")
    if classes_match and n != card.num_classes:
        raise PrunelabError(f"data '{name}' has {n} classes but the checkpoint's model has "
                            f"{card.num_classes} outputs; pass the data it was trained on, or "
                            f"--no-classes-match if its first {n} outputs are this data's classes")
    if data.image_shape[0] != card.in_channels:
        raise PrunelabError(f"data '{name}' has {data.image_shape[0]}-channel images, the "
                            f"checkpoint's model takes {card.in_channels}")
    size = card.input_size or card.info.input_size
    h, w = data.image_shape[1:3]
    if size is not None and (h, w) != (size, size):
        raise PrunelabError(f"data '{name}' has {h}x{w} images but the checkpoint's {card.model} takes "
                            f"{size}x{size}; pass images of the size it was trained on")


class Objects(NamedTuple):
    """The user's own network and data, in place of a checkpoint file and data files."""

    model: nn.Module
    card: ModelCard
    test: Source | None  # None: no point is measured (one pruned network)
    calibration: Source | None  # training images for the methods that read some


class Workbench:
    """Everything a point is computed with, for one checkpoint under one configuration.

    Args:
        cfg: the sweep's settings (checkpoint, data, pruning and retraining options).
        reads_data: False where no data is loaded (an export from a checkpoint): one image's
            shape is then `input_size` x `input_size`, by default the size the checkpoint
            records or its architecture declares (else 32), or `input_shape` (C, H, W) where
            given; otherwise the test images'.
        objects: the user's own network and data in place of `cfg`'s checkpoint and data files;
            the model is copied, never changed.
    """

    def __init__(self, cfg: SweepConfig, input_size: int | None = None, reads_data: bool = True,
                 objects: Objects | None = None, input_shape: tuple[int, ...] | None = None):
        self.cfg, self.objects = cfg, objects
        self.device = pick_device(cfg.device)
        if objects is None:
            self.model, self.card = load_checkpoint(cfg.checkpoint, cfg.model)
        else:
            self.model, self.card = copy.deepcopy(objects.model), objects.card
        self.model.to(self.device)
        self.profile = load_profile(cfg.sensitivity) if cfg.sensitivity else None
        self.latency_table = self._latency_table() if cfg.latency_table else None
        self.dense_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        size = input_size or self.card.input_size or self.card.info.input_size or 32
        self._input_shape = None if reads_data else (input_shape or (self.card.in_channels, size, size))
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
        """The data files' test and training splits, in memory (a run over dataset files)."""
        if self.streamed:
            raise PrunelabError(f"{self.test.name} is streamed, not held in memory: methods that retrain or "
                                f"re-estimate batch norm cannot read it yet; sweep one-shot methods")
        return load_dataset(self.cfg.data, self.cfg.data_root, self.cfg.download)

    @property
    def streamed(self) -> bool:
        """The data is read batch by batch (a Python Dataset, an image folder), not held whole."""
        return self.objects is not None or is_image_folder(self.cfg.data)

    def _folder(self, split: str) -> FolderSource | None:
        """A split of the image folder `--data` names, as this network takes it (None: no such split)."""
        path = folder_splits(self.cfg.data).get(split)
        size = self.card.input_size or self.card.info.input_size
        return FolderSource(path, size, self.card.mean, self.card.std) if path is not None else None

    @functools.cached_property
    def test(self) -> Source:
        """The test images as the model takes them, checked against the network once."""
        if self.objects is not None:
            source, name = self.objects.test, self.objects.test.name
        elif is_image_folder(self.cfg.data):
            source = self._folder("test")
            name = source.name
        else:
            source = TensorSource(self.data.test, self.card.mean, self.card.std, self.cfg.data,
                                  self.data.classes)
            name = self.cfg.data
        check_fits(source, self.card, name, self.cfg.classes_match)
        return source

    @property
    def data_name(self) -> str:
        """What the test data is, as the run's identity records it."""
        return self.test.name if self.streamed else self.data.name

    @functools.cached_property
    def train(self) -> Dataset:
        """The retraining data: `data`'s training split, or `train_data`'s (exact pixels kept); an
        image folder's train/ split decoded into memory at the network's input size."""
        if self.objects is not None:
            raise PrunelabError("retraining over Python objects is not supported: prune with "
                                "prunelab.prune(model, method, level) inside your own training loop")
        if is_image_folder(self.cfg.data):
            return self._folder_training_set()
        if self.cfg.train_data is None:
            data = self.data
        else:
            other = load_dataset(self.cfg.train_data, self.cfg.data_root, self.cfg.download)
            data = with_training_set(self.data, other, self.cfg.train_data)
        if len(data.train) == 0:
            raise PrunelabError(f"{self.cfg.train_data or self.cfg.data} has no training images, and a "
                                f"method here reads them (retraining, batch-norm statistics or "
                                f"calibration); pass --train-data with a training split, or sweep methods "
                                f"that read none")
        return data

    def _folder_training_set(self) -> Dataset:
        """The image folder's train/ split as retraining reads it: uint8 at the input size, cropped
        after padding an eighth of the side and flipped (as batch norm's draws are)."""
        if self.cfg.train_data is not None:
            raise PrunelabError(f"--train-data {self.cfg.train_data}: an image folder retrains on its own "
                                f"train/ split; put the training images in {self.cfg.data}/train/<class>/")
        root = folder_splits(self.cfg.data).get("train")
        if root is None:
            raise PrunelabError(f"a method here retrains, and image folder {self.cfg.data} has no train/ "
                                f"split; add {self.cfg.data}/train/<class>/...")
        size = self.input_shape[-1]
        images, classes = training_set(root, size, self.card.in_channels, memory_allowance())
        empty = ImageSet(images.x[:0], images.y[:0])
        return Dataset(f"image folder {root}", str(root), images, empty, classes, flip=True,
                       pad=max(1, size // 8))

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self._input_shape is not None:
            return tuple(self._input_shape)
        return tuple(self.test.image_shape)

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
    def training_source(self) -> Source:
        """The training images as the model takes them (never a test image): the training split
        in memory, an image folder's train/, or the user's `calibration_data`."""
        if not self.streamed:
            return TensorSource(self.train.train, self.card.mean, self.card.std, "the training split")
        if self.objects is None:
            source = self._folder("train")
            if source is None:
                raise PrunelabError(f"a method here reads training images (calibration or batch-norm "
                                    f"statistics), and image folder {self.cfg.data} has no train/ split; add "
                                    f"{self.cfg.data}/train/<class>/... (and the test images in "
                                    f"{self.cfg.data}/test/)")
            return source
        if self.objects.calibration is None:
            raise PrunelabError("a method here reads training images (calibration or batch-norm statistics); "
                                "pass calibration_data= (training images, never the test set)")
        return self.objects.calibration

    @functools.cached_property
    def calibration(self) -> Calibration:
        """`calibration` images of the training split (seeded), normalised, on the device."""
        return Calibration(self.training_source.sample(self.cfg.calibration, self.cfg.calibration_seed,
                                                       self.device))

    def bn_images(self, seed: int) -> Iterator[torch.Tensor]:
        """The batches batch norms are re-estimated on (`--bn-batches` of `--train-batch-size`
        training images, drawn by `seed`), augmented as training augments them (`--bn-augment`)
        where prunelab reads the images itself; a user's Dataset gives them as its transform does."""
        rc = self.cfg.recovery
        if not self.streamed:
            return bn_draws(self.train, self.card.mean, self.card.std, rc.bn_batches, rc.batch_size,
                            self.device, seed, rc.bn_augment)
        source, n = self.training_source, rc.bn_batches * rc.batch_size
        if isinstance(source, FolderSource) and rc.bn_augment:
            return source.augmented_draws(n, seed, rc.batch_size, self.device)
        return source.draws(n, seed, rc.batch_size, self.device)

    @property
    def shares_images(self) -> bool:
        """Each evaluation's test images are split over the processes of a torchrun."""
        return self.cfg.share == "images" and distributed.world_size() > 1

    def evaluate(self, model: nn.Module) -> Evaluation:
        """`model`'s accuracy on the test images (under `--share images`, scored by every process,
        each its slice)."""
        if self.shares_images:
            return evaluate_shared(model, self.test, self.cfg.batch_size, self.device)
        return evaluate_batches(model, self.test.batches(self.cfg.batch_size, self.device))

    @functools.cached_property
    def prunable(self) -> list[str]:
        return list(self.ctx.prunable(self.model))

    @functools.cached_property
    def dense_macs(self) -> Macs:
        """MACs of the checkpoint's architecture as it runs, counted once: a masked point runs the
        same layers (zeros are multiplied too), and the count does not read the weights' values."""
        try:
            return macs(self.model, self.input_shape)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # the user's module on the data
            first = (str(exc).splitlines() or [""])[0][:160]
            raise PrunelabError(f"the network's forward fails on inputs of shape {(1, *self.input_shape)} "
                                f"({type(exc).__name__}: {first}); pass data of the shape it takes") from None

    @functools.cached_property
    def bench(self) -> Bench:
        return Bench(self.model, self.dense_state, self.ctx, self.device, self.cfg.recovery, self.cfg.levels,
                     train_data=lambda: self.train, teacher=lambda: self.teacher, bn_images=self.bn_images,
                     on_epoch=lambda record: self.on_epoch(record) if self.on_epoch else None)

    @functools.cached_property
    def teacher(self) -> nn.Module | None:
        """The dense network that retraining distils from (`distill` > 0), else None."""
        if self.cfg.recovery.distill == 0:
            return None
        teacher = copy.deepcopy(self.model)
        teacher.load_state_dict(self.dense_state)
        return teacher.eval()
