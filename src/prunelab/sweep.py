"""Sweeps: every (method, level, seed) starts from the trained weights, is pruned, measured and stored."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import distributed
from .checkpoint import load_checkpoint, weights_digest
from .data import load_dataset, normalize, with_training_set
from .errors import PrunelabError
from .export import ModelRef, load_sparse, load_structured, save_sparse, save_structured
from .metrics import (
    check_runtime,
    check_threads,
    count,
    dense_bytes,
    evaluate,
    latencies,
    latency,
    macs,
    sparse_bytes,
    weight_density,
)
from .models import ModelInfo, model_info
from .pruning.masks import Masks, apply_masks, check_sparsity, prunable_weights
from .pruning.methods import CHANNELS, NM, Method, compute_masks, get_method, method_weights
from .pruning.schedules import geometric
from .recovery import (
    RECOVERIES,
    Recovery,
    RecoveryConfig,
    gradual_pruner,
    parse_method,
    recalibrate_bn,
    retrain,
    train_config,
)
from .results import DENSE, RETIMED, Point, Store, level_key

if TYPE_CHECKING:  # Torch-Pruning is imported only where channels are removed
    from .pruning.structured import Structured


def parse_levels(text: str) -> tuple[float, ...]:
    """Parse sparsity levels: 'start:stop:step' (both ends included), 'geometric:P:K' (K rounds
    that each remove a fraction P of the remaining weights, for iterative pruning) or a comma list.

    Example: '0:1:0.05' -> (0.0, 0.05, ..., 1.0), the classic grid of 21 levels;
    'geometric:0.2:3' -> (0.2, 0.36, 0.488).
    """
    try:
        if text.startswith("geometric:"):
            _, fraction, rounds = text.split(":")
            values = list(geometric(int(rounds), check_sparsity(float(fraction), "fraction per round")))
        elif ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = round((stop - start) / step)
            values = [round(start + i * step, 6) for i in range(n + 1)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PrunelabError(f"levels '{text}' are not 'start:stop:step', 'geometric:P:K' or a comma "
                            f"list of numbers, e.g. 0:1:0.05, geometric:0.2:10 or 0,0.5,0.9") from None
    if not values:
        raise PrunelabError("no sparsity levels given; e.g. --levels 0:1:0.05")
    for v in values:
        check_sparsity(v, f"level {v} in --levels '{text}'")
    return tuple(sorted(set(values)))


CLASSIC_LEVELS = parse_levels("0:1:0.05")
LATENCY_RUNS = ((1, 5, 30), (64, 2, 7))  # (batch, warm-up forwards, timed forwards): medians of 30 and 7


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep depends on; resolved once and saved in the run folder."""

    checkpoint: str
    data: str
    model: str | None = None  # required for foreign .th/.pt checkpoints
    train_data: str | None = None  # retrain on these training images instead of `data`'s
    data_root: str | None = None
    download: bool = False
    methods: tuple[str, ...] = ("layerwise", "global", "random")  # each '<method>[+<recovery>]'
    levels: tuple[float, ...] = CLASSIC_LEVELS
    seeds: tuple[int, ...] = (0,)  # stochastic methods only; deterministic ones run once (seed 0)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    prune_classifier: bool = False
    layer_cap: float | None = None  # global allocation: largest fraction one layer may lose
    sensitivity: str | None = None  # profile for the sensitivity method (RUN or RUN/sensitivity.json)
    round_to: int | None = None  # channel methods: keep channel counts at multiples of this
    latency: bool = False  # also measure latency at batch 1 and 64 (slow: off by default)
    threads: int = 1  # CPU threads for the latency measurement
    runtime: str = "torch"  # what runs the latency forwards: torch (eager) or onnxruntime (exported ONNX)
    file_size: bool = True  # write each one-shot point's file to measure its size (seconds on big models)
    batch_size: int = 500
    device: str = "auto"


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


@dataclass(frozen=True)
class Pruned:
    """A pruned copy of a model.

    Attributes:
        model: the pruned network (a new module).
        masks: the masks applied (mask and N:M methods), else None.
        structured: the channel-pruning result (channel methods), else None.
    """

    model: nn.Module
    masks: Masks | None
    structured: Structured | None


def prune_model(model: nn.Module, info: ModelInfo, method: str, level: float, seed: int,
                example_input: torch.Tensor, prune_classifier: bool = False,
                layer_cap: float | None = None, round_to: int | None = None,
                profile: dict | None = None) -> Pruned:
    """Prune a copy of `model` to `level` with `method` (`DENSE` for none); `model` is untouched.

    Args:
        model: the trained network.
        info: its registry metadata (classifier, stem).
        method: a method name, or "dense".
        level: target sparsity; channel methods: fraction of prunable weights removed.
        seed: for stochastic methods.
        example_input: (1, C, H, W) input, for tracing channel dependencies.
        prune_classifier: mask methods also prune the classifier's weight.
        layer_cap: largest fraction of a layer (channel methods: of a group's channels) to go.
        round_to: channel methods: channel counts at multiples of this.
        profile: sensitivity curves, for the sensitivity method.
    """
    if method == DENSE:
        return Pruned(copy.deepcopy(model), None, None)
    m = get_method(method)
    if m.kind == CHANNELS:
        from .pruning.structured import prune_channels

        result = prune_channels(model, info, example_input, level, m.allocation, layer_cap, round_to)
        return Pruned(result.model, None, result)
    pruned = copy.deepcopy(model)
    weights = method_weights(m, prunable_weights(pruned, info.classifier, prune_classifier), info.stem)
    masks = compute_masks(m, {k: w.detach() for k, w in weights.items()}, level, seed, layer_cap=layer_cap,
                          profile=profile)
    apply_masks(pruned, masks)
    return Pruned(pruned, masks, None)


def point_model(run: str | Path, method: str, level: float, seed: int = 0
                ) -> tuple[Pruned, ModelInfo, ModelRef, tuple[int, ...]]:
    """Rebuild the model of one stored sweep point from its run folder (checkpoint + config).

    Returns:
        (the pruned model, registry metadata, model reference, (C, H, W) of one input).
    """
    store = Store.open(run)
    try:
        config = store.meta("config") or {}
        config["weights_sha256"] = (store.meta("fingerprint") or {}).get("weights_sha256")
        keys = store.keys()
    finally:
        store.close()
    if (method, level_key(level), seed) not in keys:
        swept = sorted({k[1] / 1_000_000 for k in keys if k[0] == method})
        if not swept:
            methods = sorted({k[0] for k in keys})
            raise PrunelabError(f"run {run} has no points of method '{method}'; "
                                f"it swept {', '.join(methods)}")
        raise PrunelabError(f"level {level:g} of '{method}' (seed {seed}) was not swept in {run}; "
                            f"swept levels: {', '.join(f'{v:g}' for v in swept)}")
    if method != DENSE and parse_method(method)[1].name != "none":
        return _retrained_point(run, method, level, seed, config)
    model, meta = load_checkpoint(run_checkpoint(run, config), config.get("resolved_model"))
    info = model_info(meta.model)
    if "input_shape" in config:
        shape = tuple(config["input_shape"])
    else:  # runs from before the shape was saved: read it off the data
        shape = tuple(load_dataset(config["data"], config.get("data_root")).test.x.shape[1:])
    example = torch.zeros((1, *shape))
    pruned = prune_model(model, info, method, level, seed, example, config.get("prune_classifier", False),
                         config.get("layer_cap"), config.get("round_to"),
                         load_profile(config["sensitivity"]) if config.get("sensitivity") else None)
    ref = ModelRef.of(meta)
    return pruned, info, ref, shape


def run_checkpoint(run: str | Path, config: dict) -> Path:
    """The checkpoint a run folder was swept from: where the sweep was told, or else the same path
    relative to the run folder (a run folder moved or unpacked together with its checkpoint).
    It must still hold the weights the sweep hashed: another file there is refused."""
    places = [Path(config["checkpoint"])]
    if config.get("checkpoint_from_run"):
        places.append(Path(run) / config["checkpoint_from_run"])
    found = next((p for p in places if p.exists()), None)
    if found is None:
        raise PrunelabError(f"run {run} was swept from checkpoint {places[0]}, which is gone"
                            + (f" (nor at {places[1]})" if len(places) > 1 else "")
                            + "; put the checkpoint back there to rebuild its points")
    want = config.get("weights_sha256")
    if want and weights_digest(found) != want:
        raise PrunelabError(f"checkpoint {found} holds other weights than run {run} was swept from "
                            f"(sha256 differs); put the original checkpoint back")
    return found


def point_file(run: str | Path, spec: str, level: float, seed: int, file_format: str) -> Path:
    """Where a sweep keeps the model of a retrained point: RUN/models/<spec>-seed<k>/<ppm>.<ext>."""
    ext = "safetensors" if file_format == "structured" else "sparse"
    return Path(run) / "models" / f"{spec.replace('+', '_')}-seed{seed}" / f"{level_key(level):07d}.{ext}"


def partial_dir(run: str | Path, spec: str, level: float, seed: int) -> Path:
    """Where a point being retrained keeps its training state after every epoch, until it is stored:
    an interrupted sweep resumes the point from its last finished epoch."""
    return Path(run) / "partial" / f"{spec.replace('+', '_')}-seed{seed}" / f"{level_key(level):07d}"


def chain_dir(run: str | Path, spec: str, seed: int) -> Path:
    """Where an iterative chain keeps its retrained state at every level."""
    return Path(run) / "chains" / f"{spec.replace('+', '_')}-seed{seed}"


def read_chain_state(path: Path, device: str = "cpu") -> tuple[dict, Masks]:
    """A chain state file: (the model's state dict, the masks at that level)."""
    state = load_file(str(path), device=device)
    masks = {k.removeprefix("mask::"): v.bool() for k, v in state.items() if k.startswith("mask::")}
    return {k: v for k, v in state.items() if not k.startswith("mask::")}, masks


def _retrained_point(run: str | Path, spec: str, level: float, seed: int, config: dict
                     ) -> tuple[Pruned, ModelInfo, ModelRef, tuple[int, ...]]:
    """Load the kept model of a retrained point (its weights come from training, not the checkpoint)."""
    for file_format, load in (("sparse", load_sparse), ("structured", load_structured)):
        path = point_file(run, spec, level, seed, file_format)
        if path.exists():
            model, ref = load(path)
            return Pruned(model, None, None), model_info(ref.name), ref, tuple(config["input_shape"])
    chain = chain_dir(run, spec, seed) / f"{level_key(level):07d}.safetensors"
    if chain.exists():  # an iterative chain's state at this level is the point's model
        model, meta = load_checkpoint(run_checkpoint(run, config), config.get("resolved_model"))
        state, masks = read_chain_state(chain)
        model.load_state_dict(state)
        ref = ModelRef.of(meta)
        return Pruned(model.eval(), masks, None), model_info(meta.model), ref, tuple(config["input_shape"])
    raise PrunelabError(f"run {run} kept no model for the retrained point '{spec}' at {level:g} (seed "
                        f"{seed}): sweeps before prunelab kept them did not; sweep it again into a "
                        f"new folder")


def retime(run: str | Path, runtime: str = "torch", threads: int = 1, device: str = "cpu") -> list[Point]:
    """Time every stored point's model again, all side by side (`latencies`: round-robin), and store
    the new latencies in place of the sweep's.

    A sweep times each point when it finishes, so the points of one run are timed minutes or hours
    apart under whatever else the machine was doing; their ratios mislead on a shared machine.
    Side-by-side timing puts the same load on every point.

    Args:
        run: a sweep's run folder.
        runtime: 'torch' (eager) or 'onnxruntime'.
        threads: intra-op CPU threads.
        device: where eager models run ('cpu' or 'cuda').

    Returns:
        every stored point, with its new latencies.
    """
    check_runtime(runtime)
    check_threads(threads)
    target = pick_device(device)
    store = Store.open(run)
    try:
        points = store.points()
    finally:
        store.close()
    if not points:
        raise PrunelabError(f"run {run} has no stored points to time")
    models, shape = {}, None
    for p in points:
        pruned, _, _, shape = point_model(run, p.method, p.target_sparsity, p.seed)
        models[str(p.key)] = pruned.model.to(target).eval()
    timed = {batch: latencies(models, shape, batch, threads, warmup, repeats, runtime)
             for batch, warmup, repeats in LATENCY_RUNS}
    out = []
    for p in points:
        t1, t64 = timed[1][str(p.key)], timed[64][str(p.key)]
        out.append(replace(p, latency_b1=t1.median, latency_b64=t64.median, latency_threads=t1.threads,
                           latency_runtime=runtime))
    store = Store.open(run)
    try:
        for p in out:
            store.add(p)
        store.set_meta(RETIMED, sorted(list(p.key) for p in out))
    finally:
        store.close()
    return out


def levels_of(method: Method, levels: tuple[float, ...]) -> tuple[float, ...]:
    """The levels a method is swept at: N:M methods have one, 1 - N/M, whatever the grid."""
    return (method.fixed_sparsity,) if method.kind == NM else levels


def _recovery_fingerprint(rc: RecoveryConfig) -> dict:
    """The retraining settings that fix results; distillation's only when it is on, so stores
    written before it existed still resume."""
    fields = asdict(rc)
    if rc.distill == 0:
        del fields["distill"], fields["temperature"]
    return fields


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
        if cfg.round_to is not None and (not isinstance(cfg.round_to, int) or cfg.round_to < 1):
            raise PrunelabError(f"round_to must be a positive integer, got {cfg.round_to!r}")
        check_threads(cfg.threads)
        check_runtime(cfg.runtime)
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
        if cfg.train_data is not None:
            self.data = with_training_set(data, load_dataset(cfg.train_data, cfg.data_root, cfg.download),
                                          cfg.train_data)
        self.x = normalize(test.x, self.meta.mean, self.meta.std).to(self.device)
        self.y = test.y.to(self.device)
        self.model.to(self.device)
        weights = prunable_weights(self.model, self.info.classifier, cfg.prune_classifier)
        self.prunable = list(weights)
        # Pristine copies: every point reloads these and scores them, never the pruned model.
        self.dense_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.dense_weights = {k: self.dense_state[k] for k in self.prunable}

        data_hash = hashlib.sha256(test.x.numpy().tobytes() + test.y.numpy().tobytes()).hexdigest()
        self.fingerprint = {
            "model": self.meta.model,
            "weights_sha256": weights_digest(cfg.checkpoint),
            "data": data.name,
            "test_images": len(test),
            "test_sha256": data_hash,
            "prune_classifier": cfg.prune_classifier,
            "layer_cap": cfg.layer_cap,
            "recovery": _recovery_fingerprint(cfg.recovery),
            "sensitivity_sha256": hashlib.sha256(json.dumps(self.profile, sort_keys=True).encode()
                                                 ).hexdigest() if self.profile else None,
        }
        if cfg.train_data is not None:  # only when set, as round_to
            train = self.data.train
            self.fingerprint["train_sha256"] = hashlib.sha256(train.x.numpy().tobytes() +
                                                              train.y.numpy().tobytes()).hexdigest()
        if cfg.round_to is not None:  # only when set, so stores from before it existed still resume
            self.fingerprint["round_to"] = cfg.round_to
        self.ref = ModelRef.of(self.meta)
        self.input_shape = tuple(self.x.shape[1:])
        config = {**asdict(cfg), "resolved_model": self.meta.model, "classes": list(data.classes),
                  "checkpoint_from_run": os.path.relpath(Path(cfg.checkpoint).resolve(), Path(out).resolve()),
                  "prunable": self.prunable, "device": str(self.device),
                  "input_shape": list(self.input_shape)}
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
            points += [(name, level, seed) for seed in seeds for level in levels_of(method, self.cfg.levels)]
        return points

    # ------------------------------------------------------------ iterative chains

    def _chain_dir(self, spec: str, seed: int) -> Path:
        return chain_dir(self.store.folder, spec, seed)

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
                state, masks = read_chain_state(path, str(self.device))
                self.model.load_state_dict(state)
                return masks
        self.model.load_state_dict(self.dense_state)
        return None

    def _prune_channels_further(self, spec: str, level: float, seed: int) -> Pruned:
        """An iterative channel chain's step: remove channels from the retrained network of the
        highest kept level below `level` (the dense one at the start) until `level` of the
        *original* prunable weights are gone; the kept point files are the chain's states.
        The result's levels and per-layer counts are against the original network; its channel
        counts against the network this step started from."""
        from .pruning.structured import prune_channels

        cfg, method = self.cfg, parse_method(spec)[0]
        start = self.model
        self.model.load_state_dict(self.dense_state)
        original = {k: w.numel() for k, w in prunable_weights(self.model, self.info.classifier).items()}
        for lv in sorted((lv for lv in cfg.levels if lv < level), reverse=True):
            path = point_file(self.store.folder, spec, lv, seed, "structured")
            if path.exists():
                start = load_structured(path)[0].to(self.device)
                break
        result = prune_channels(start, self.info, self.x[:1], level, method.allocation, cfg.layer_cap,
                                cfg.round_to, original)
        return Pruned(result.model, None, result)

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
        cfg = self.cfg
        method, recovery = parse_method(spec) if spec != DENSE else (None, RECOVERIES["none"])
        if recovery.name != "none" and method.kind != CHANNELS:
            self._prune_and_recover(spec, level, seed)  # in place, on the sweep's model
            pruned = Pruned(self.model, None, None)
        elif recovery.chained:  # channels: the previous level's retrained network loses more
            pruned = self._prune_channels_further(spec, level, seed)
            self._recover(pruned.model, recovery, spec, level, seed)
        else:
            self.model.load_state_dict(self.dense_state)  # a recovery point may have trained it
            pruned = prune_model(self.model, self.info, method.name if method else DENSE, level, seed,
                                 self.x[:1], cfg.prune_classifier, cfg.layer_cap, cfg.round_to, self.profile)
            if recovery.name != "none":  # channels removed: the smaller network recovers, no masks
                self._recover(pruned.model, recovery, spec, level, seed)
        # A recovered point's weights exist nowhere else, so its file is kept; a mask chain's are
        # in its chain state already.
        keep = recovery.name != "none" and not (recovery.chained and method.kind != CHANNELS)
        return self.measure(pruned, spec, level, seed, start, keep=keep)

    def measure(self, pruned: Pruned, spec: str, level: float, seed: int, start: float,
                keep: bool = False) -> Point:
        """Evaluate and measure a pruned model as the point (spec, level, seed), begun at `start`.

        `keep`: keep the exported file in the run folder (`point_file`), for a retrained point
        whose weights exist nowhere else; otherwise it is measured and dropped (re-pruning the
        checkpoint rebuilds a one-shot point).
        """
        cfg, model = self.cfg, pruned.model
        ev = evaluate(model, self.x, self.y, cfg.batch_size)
        counted = macs(model, self.input_shape)
        file_format = "structured" if pruned.structured is not None else "sparse"
        file_bytes = self._file_bytes(model, spec, level, seed, file_format, keep)
        timing = {}
        if cfg.latency:
            for batch, warmup, repeats in LATENCY_RUNS:
                t = latency(model, self.input_shape, batch, cfg.threads, warmup, repeats, cfg.runtime)
                timing[f"latency_b{batch}"] = t.median
            timing["latency_threads"], timing["latency_runtime"] = t.threads, t.runtime
        if pruned.structured is not None:  # weights removed, not zeroed: every byte stored is needed
            layers = pruned.structured.layers
            prunable = sum(n for _, n in layers.values())
            nonzero = prunable - sum(r for r, _ in layers.values())
            sparsity, effective = pruned.structured.achieved, float(counted.total)
            sparse = dense_bytes(model)
        else:
            counts = count(model, self.prunable)
            layers, sparsity, nonzero, prunable = (counts.per_layer, counts.sparsity, counts.nonzero,
                                                   counts.prunable)
            effective = counted.effective(weight_density(counts))
            sparse = sparse_bytes(model, counts)
        total = sum(p.numel() for p in model.parameters())
        return Point(
            method=spec, target_sparsity=level, seed=seed, sparsity=sparsity,
            nonzero_params=nonzero, prunable_params=prunable, total_params=total,
            correct=ev.correct, n_images=ev.n, top1=ev.top1, top5=ev.top5, loss=ev.loss,
            dense_bytes=dense_bytes(model), sparse_bytes=sparse,
            seconds=time.perf_counter() - start, layers=layers, hits=ev.hits,
            macs=counted.total, effective_macs=effective, file_bytes=file_bytes,
            file_format=file_format if file_bytes is not None else None,
            **timing,
        )

    def _file_bytes(self, model: nn.Module, spec: str, level: float, seed: int, file_format: str,
                    keep: bool) -> int | None:
        """Bytes of the point's exported file: kept in the run folder (`point_file`) when `keep`,
        else written to a temporary folder only to be measured, or not measured at all when the
        sweep says so (`file_size`: compressing a large model's file costs more than its
        evaluation on a GPU); `prunelab export` writes and measures it later."""
        if not keep and not self.cfg.file_size:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = point_file(self.store.folder if keep else tmp, spec, level, seed, file_format)
            path.parent.mkdir(parents=True, exist_ok=True)
            if file_format == "structured":
                return save_structured(path, model, self.info, self.ref)
            return save_sparse(path, model, self.ref)

    @functools.cached_property
    def teacher(self) -> nn.Module | None:
        """The dense network that retraining distills from (`recovery.distill` > 0), else None."""
        if self.cfg.recovery.distill == 0:
            return None
        teacher = copy.deepcopy(self.model)
        teacher.load_state_dict(self.dense_state)
        return teacher.eval()

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
            pruner = gradual_pruner(method, self.model, self.prunable, level, seed, steps, rc,
                                    cfg.layer_cap, self.profile)
            retrain(self.model, data, mean, std, rc, seed, self.device, pruner=pruner,
                    on_epoch=self._epoch_hook(spec, level, seed), teacher=self.teacher,
                    state_dir=partial_dir(self.store.folder, spec, level, seed))
            return
        if recovery.chained:
            prior = self._chain_start(spec, seed, level)
            weights = {n: p.detach().clone() for n, p in self.model.named_parameters()
                       if n in self.prunable}
        else:
            self.model.load_state_dict(self.dense_state)  # fresh weights: nothing compounds
            prior, weights = None, self.dense_weights
        weights = method_weights(method, weights, self.info.stem)  # N:M keeps the stem dense
        masks = compute_masks(method, weights, level, seed, prior=prior, layer_cap=cfg.layer_cap,
                              profile=self.profile)
        apply_masks(self.model, masks)
        self._recover(self.model, recovery, spec, level, seed, masks)
        if recovery.chained:
            self._chain_save(spec, seed, level, masks)

    def _recover(self, model: nn.Module, recovery: Recovery, spec: str, level: float, seed: int,
                 masks: Masks | None = None) -> None:
        """Batch-norm recalibration or retraining (masks held) of a pruned `model`, in place."""
        rc, mean, std = self.cfg.recovery, self.meta.mean, self.meta.std
        if recovery.name == "bn":
            recalibrate_bn(model, self.data, mean, std, rc.bn_batches, rc.batch_size, self.device, seed)
        elif recovery.trains:
            retrain(model, self.data, mean, std, rc, seed, self.device, masks=masks,
                    on_epoch=self._epoch_hook(spec, level, seed), teacher=self.teacher,
                    state_dir=partial_dir(self.store.folder, spec, level, seed))

    def run(self, on_point: Callable[[Point], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Point]:
        """Compute every missing point, storing each as it finishes; returns all stored points.

        `should_stop` is asked before each point: True ends the loop there (what is left stays
        missing, and the same sweep run again computes it)."""
        for method, level, seed in list(self.todo):
            if should_stop is not None and should_stop():
                break
            point = self.point(method, level, seed)
            self.store.add(point)
            self.todo.remove((method, level, seed))
            shutil.rmtree(partial_dir(self.store.folder, method, level, seed), ignore_errors=True)
            if on_point is not None:
                on_point(point)
        distributed.barrier()  # under torchrun: every process's points are stored
        return self.store.points()
