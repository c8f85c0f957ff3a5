"""Sweeps: every (method, level, seed) starts from the trained weights, is pruned, measured and stored."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import distributed
from .checkpoint import load_checkpoint
from .data import load_dataset, normalize
from .errors import PrunelabError
from .metrics import count, dense_bytes, evaluate, sparse_bytes
from .models import model_info
from .pruning.masks import Masks, apply_masks, check_sparsity, prunable_weights
from .pruning.methods import compute_masks
from .recovery import RecoveryConfig, gradual_pruner, parse_method, recalibrate_bn, retrain, train_config
from .results import DENSE, Point, Store, level_key


def parse_levels(text: str) -> tuple[float, ...]:
    """Parse sparsity levels: 'start:stop:step' (both ends included) or a comma list.

    Example: '0:1:0.05' -> (0.0, 0.05, ..., 1.0), the classic grid of 21 levels.
    """
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = round((stop - start) / step)
            values = [round(start + i * step, 6) for i in range(n + 1)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PrunelabError(f"levels '{text}' are not 'start:stop:step' or a comma list of "
                            f"numbers, e.g. 0:1:0.05 or 0,0.5,0.9") from None
    if not values:
        raise PrunelabError("no sparsity levels given; e.g. --levels 0:1:0.05")
    for v in values:
        check_sparsity(v, f"level {v} in --levels '{text}'")
    return tuple(sorted(set(values)))


CLASSIC_LEVELS = parse_levels("0:1:0.05")


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep depends on; resolved once and saved in the run folder."""

    checkpoint: str
    data: str
    model: str | None = None  # required for foreign .th/.pt checkpoints
    data_root: str | None = None
    download: bool = False
    methods: tuple[str, ...] = ("layerwise", "global", "random")  # each '<method>[+<recovery>]'
    levels: tuple[float, ...] = CLASSIC_LEVELS
    seeds: tuple[int, ...] = (0,)  # stochastic methods only; deterministic ones run once (seed 0)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    prune_classifier: bool = False
    layer_cap: float | None = None  # global allocation: largest fraction one layer may lose
    sensitivity: str | None = None  # profile for the sensitivity method (RUN or RUN/sensitivity.json)
    batch_size: int = 500
    device: str = "auto"
    extra: dict = field(default_factory=dict)


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


PROFILE_FILE = "sensitivity.json"


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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Sweep:
    """A prepared sweep: model, data and store loaded, with the points still to compute."""

    def __init__(self, cfg: SweepConfig, out: str | Path):
        uses_profile = False
        for name in cfg.methods:
            uses_profile |= parse_method(name)[0].allocation == "sensitivity"
        if uses_profile and not cfg.sensitivity:
            raise PrunelabError("the sensitivity method needs a sensitivity profile: run "
                                "'prunelab sensitivity CHECKPOINT --out RUN' and pass --sensitivity RUN")
        self.profile = load_profile(cfg.sensitivity) if cfg.sensitivity else None
        train_config(cfg.recovery, 0)  # validates the retraining settings before any work
        for level in cfg.levels:
            check_sparsity(level, "level")
        if cfg.layer_cap is not None:
            check_sparsity(cfg.layer_cap, "layer cap")
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.model, self.meta = load_checkpoint(cfg.checkpoint, cfg.model)
        self.info = model_info(self.meta.model)
        data = load_dataset(cfg.data, cfg.data_root, cfg.download)
        self.data, test = data, data.test
        if int(test.y.max()) >= self.meta.num_classes:
            raise PrunelabError(f"data '{cfg.data}' has labels up to {int(test.y.max())} but the "
                                f"checkpoint's model has {self.meta.num_classes} classes; "
                                f"pass the data it was trained on")
        if test.x.shape[1] != self.meta.in_channels:
            raise PrunelabError(f"data '{cfg.data}' has {test.x.shape[1]}-channel images, the "
                                f"checkpoint's model takes {self.meta.in_channels}")
        self.x = normalize(test.x, self.meta.mean, self.meta.std).to(self.device)
        self.y = test.y.to(self.device)
        self.model.to(self.device)
        weights = prunable_weights(self.model, self.info.classifier, cfg.prune_classifier)
        self.prunable = list(weights)
        # Pristine copies: every point reloads these and scores them, never the pruned model.
        self.dense_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.dense_weights = {k: self.dense_state[k] for k in self.prunable}

        ckpt = Path(cfg.checkpoint)
        weights_file = ckpt / "model.safetensors" if ckpt.is_dir() else ckpt
        data_hash = hashlib.sha256(test.x.numpy().tobytes() + test.y.numpy().tobytes()).hexdigest()
        self.fingerprint = {
            "model": self.meta.model,
            "weights_sha256": _sha256_file(weights_file),
            "data": data.name,
            "test_images": len(test),
            "test_sha256": data_hash,
            "prune_classifier": cfg.prune_classifier,
            "layer_cap": cfg.layer_cap,
            "recovery": asdict(cfg.recovery),
            "sensitivity_sha256": hashlib.sha256(json.dumps(self.profile, sort_keys=True).encode()
                                                 ).hexdigest() if self.profile else None,
        }
        config = {**asdict(cfg), "resolved_model": self.meta.model, "classes": list(data.classes),
                  "prunable": self.prunable, "device": str(self.device)}
        # Under torchrun the first process creates the store; the others then open it.
        if distributed.is_main():
            self.store = Store.create(out, self.fingerprint, config)
            (Path(out) / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        distributed.barrier()
        if not distributed.is_main():
            self.store = Store.create(out, self.fingerprint, config)
        # Called as (method, level, seed, epoch record) after every retraining epoch.
        self.on_train_epoch: Callable[[str, float, int, dict], None] | None = None
        done = self.store.keys()
        self.todo = [k for k in self.mine(self.plan()) if (k[0], level_key(k[1]), k[2]) not in done]

    def mine(self, points: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
        """This process's share of `points` under torchrun: every point of an iterative chain
        goes to one process (they depend on each other), other points round-robin."""
        ranks, me = distributed.world_size(), distributed.rank()
        chains: dict[tuple[str, int], int] = {}
        out = []
        for i, (spec, level, seed) in enumerate(points):
            if spec != DENSE and parse_method(spec)[1].chained:
                owner = chains.setdefault((spec, seed), len(chains)) % ranks
            else:
                owner = i % ranks
            if owner == me:
                out.append((spec, level, seed))
        return out

    def plan(self) -> list[tuple[str, float, int]]:
        """(method, level, seed) of every point: the dense baseline first, then method x level x seed."""
        points = [(DENSE, 0.0, 0)]
        for name in self.cfg.methods:
            method, recovery = parse_method(name)
            seeds = self.cfg.seeds if method.stochastic or recovery.trains else (0,)
            points += [(name, level, seed) for seed in seeds for level in self.cfg.levels]
        return points

    # ------------------------------------------------------------ iterative chains

    def _chain_dir(self, spec: str, seed: int) -> Path:
        return self.store.folder / "chains" / f"{spec.replace('+', '_')}-seed{seed}"

    def _chain_start(self, spec: str, seed: int, level: float) -> Masks | None:
        """Load into the model the chain's retrained state at the level just below `level`.

        Chains resume from their saved states; a level whose predecessor has no state starts
        again from the dense weights at the highest saved level below it (or from dense).
        """
        below = [lv for lv in self.cfg.levels if lv < level]
        folder = self._chain_dir(spec, seed)
        for lv in reversed(below):
            path = folder / f"{level_key(lv):07d}.safetensors"
            if path.exists():
                state = load_file(str(path), device=str(self.device))
                masks = {k.removeprefix("mask::"): v.bool() for k, v in state.items()
                         if k.startswith("mask::")}
                self.model.load_state_dict({k: v for k, v in state.items() if not k.startswith("mask::")})
                return masks
        self.model.load_state_dict(self.dense_state)
        return None

    def _chain_save(self, spec: str, seed: int, level: float, masks: Masks) -> None:
        folder = self._chain_dir(spec, seed)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        state.update({f"mask::{k}": m.cpu().to(torch.uint8) for k, m in masks.items()})
        tmp = folder / "state.tmp"
        save_file(state, str(tmp))
        tmp.replace(folder / f"{level_key(level):07d}.safetensors")

    # ------------------------------------------------------------ points

    def point(self, spec: str, level: float, seed: int) -> Point:
        """Prune to `level` with `spec` ('<method>[+<recovery>]'), recover, and measure.

        Every point starts from a fresh copy of the trained weights, except the points of an
        iterative chain, which start from the previous level of the same chain.
        """
        start = time.perf_counter()
        if spec == DENSE:
            self.model.load_state_dict(self.dense_state)
        else:
            self._prune_and_recover(spec, level, seed)
        ev = evaluate(self.model, self.x, self.y, self.cfg.batch_size)
        counts = count(self.model, self.prunable)
        return Point(
            method=spec, target_sparsity=level, seed=seed, sparsity=counts.sparsity,
            nonzero_params=counts.nonzero, prunable_params=counts.prunable, total_params=counts.total,
            correct=ev.correct, n_images=ev.n, top1=ev.top1, top5=ev.top5, loss=ev.loss,
            dense_bytes=dense_bytes(self.model), sparse_bytes=sparse_bytes(self.model, counts),
            seconds=time.perf_counter() - start, layers=counts.per_layer, hits=ev.hits,
        )

    def _epoch_hook(self, spec: str, level: float, seed: int):
        if self.on_train_epoch is None:
            return None
        return lambda record: self.on_train_epoch(spec, level, seed, record)

    def _prune_and_recover(self, spec: str, level: float, seed: int) -> None:
        method, recovery = parse_method(spec)
        cfg, rc, data = self.cfg, self.cfg.recovery, self.data
        mean, std = self.meta.mean, self.meta.std
        if recovery.name == "gradual":
            self.model.load_state_dict(self.dense_state)
            steps = cfg.recovery.epochs * -(-len(data.train) // rc.batch_size)
            pruner, _ = gradual_pruner(method, self.model, self.prunable, level, seed, steps, rc,
                                       cfg.layer_cap, self.profile)
            retrain(self.model, data, mean, std, rc, seed, self.device, pruner=pruner,
                    on_epoch=self._epoch_hook(spec, level, seed))
            return
        if recovery.chained:
            prior = self._chain_start(spec, seed, level)
            weights = {n: p.detach().clone() for n, p in self.model.named_parameters()
                       if n in self.prunable}
        else:
            self.model.load_state_dict(self.dense_state)  # fresh weights: nothing compounds
            prior, weights = None, self.dense_weights
        masks = compute_masks(method, weights, level, seed, prior=prior, layer_cap=cfg.layer_cap,
                              profile=self.profile)
        apply_masks(self.model, masks)
        if recovery.name == "bn":
            recalibrate_bn(self.model, data, mean, std, rc.bn_batches, rc.batch_size, self.device, seed)
        elif recovery.trains:
            retrain(self.model, data, mean, std, rc, seed, self.device, masks=masks,
                    on_epoch=self._epoch_hook(spec, level, seed))
        if recovery.chained:
            self._chain_save(spec, seed, level, masks)

    def run(self, on_point: Callable[[Point], None] | None = None) -> list[Point]:
        """Compute every missing point, storing each as it finishes; returns all stored points."""
        for method, level, seed in self.todo:
            point = self.point(method, level, seed)
            self.store.add(point)
            if on_point is not None:
                on_point(point)
        self.todo = []
        distributed.barrier()  # under torchrun: every process's points are stored
        return self.store.points()
