"""The sweep's settings: resolved once (defaults <- file <- command line), validated here, saved
with the results. Each field carries its command-line help: a default lives in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import setting
from ..errors import PrunelabError
from ..measure import RUNTIMES, check_runtime, check_threads
from ..pruning.masks import check_sparsity
from ..quant import QUANTIZERS, QuantSpec, check_bits
from ..recovery import RecoveryConfig, train_config
from ..training.plan import parse_duration
from .spec import CLASSIC_LEVELS, MethodSpec, parse_levels

SHARES = ("points", "images")  # what the processes of a torchrun split: the points, or each one's images


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep depends on; resolved once and saved in the run folder."""

    checkpoint: str = setting(help="the trained network", cli=False)
    data: str = setting("digits", "'digits' (embedded), 'cifar10' (torchvision, with --data-root), a "
                        "CIFAR-10 .npz (uint8 or JPEG layout) or an image folder (class folders under "
                        "test/ or val/, and train/).")
    model: str | None = setting(None, "Registry name; needed for plain .th/.pt state dicts.")
    train_data: str | None = setting(None, "Recovery: retrain on this dataset's training images instead of "
                                     "--data's (where --data's file records its images' original positions, "
                                     "its exact pixels replace their copies here).")
    data_root: str | None = setting(None, "Folder holding cifar-10-batches-py (for --data cifar10).")
    download: bool = setting(False, "Download CIFAR-10 into --data-root if it is missing (needs network).")
    classes_match: bool = setting(True, "Refuse a checkpoint with another class count than the data's "
                                  "(off: its first outputs are the data's classes).")
    methods: tuple[str, ...] = setting(("layerwise", "global", "random"),
                                       "Comma list of '<method>[+<recovery>]' (see 'prunelab methods').")
    levels: tuple[float, ...] = setting(CLASSIC_LEVELS, "Sparsity levels: 'start:stop:step', 'geometric:P:K' "
                                        "(K rounds removing a fraction P of what is left) or a list.",
                                        parse=parse_levels, shown="0:1:0.05")
    seeds: tuple[int, ...] = setting((0,), "Comma list of seeds for methods whose results depend on one "
                                     "(random, and every retraining); the others run once.")
    recovery: RecoveryConfig = setting(factory=RecoveryConfig, cli=False)  # its fields: options of their own
    prune_classifier: bool = setting(False, "Also prune the classifier (the classic study's setting).")
    layer_cap: float | None = setting(None, "Largest fraction any one layer (channel methods: group) may "
                                      "lose.")
    sensitivity: str | None = setting(None, "Profile for the sensitivity method: a 'prunelab sensitivity' "
                                      "run folder.")
    round_to: int | None = setting(None, "Channel methods: keep channel counts at multiples of this.")
    latency_table: str | None = setting(None, "Channel methods allocating by latency (channels-latency, "
                                        "channels-rec-latency): a table from 'prunelab latency-table'.")
    latency: bool = setting(False, "Also measure latency at batch 1 and 64 for every point.")
    threads: int = setting(1, "CPU threads for --latency.")
    runtime: str = setting("torch", "What runs the --latency forwards: eager PyTorch, or onnxruntime on "
                           "the exported ONNX (float, or int8 as --format onnx-int8 writes it).",
                           choices=lambda: RUNTIMES.names())
    file_size: bool = setting(False, "Also write every one-shot mask point's sparse file to measure its "
                              "size (retrained and channel points always have theirs).")
    bits: tuple[int, ...] = setting((), "Also quantize every mask method's points to these bits per weight "
                                    "(2-8; each a method '<method>@<quantizer><bits>', measured on the file "
                                    "read back).", shown="none")
    quantizers: tuple[str, ...] = setting(("kmeans", "uniform"), "Schemes for --bits: kmeans (one codebook "
                                          "per layer) and/or uniform (scales per output channel).")
    calibration: int = setting(1024, "Methods that read calibration images (obs*, obc*, channels-rec*, "
                               "blocks): how many, drawn from the training split.")
    calibration_seed: int = setting(0, "Methods that read calibration images: seed of their draw.")
    damp: float = setting(0.01, "Second-order methods: Hessian damping, as a fraction of its mean diagonal.")
    obs_block: int = setting(128, "Second-order methods: input columns updated at a time.")
    batch_size: int = setting(500, "Evaluation batch size.")
    device: str = setting("auto", "auto, cpu or cuda.")
    time_budget: float | None = setting(None, "Refuse, before any point, a sweep estimated to take longer "
                                        "(8h, 90m, 3600s): its retraining steps and evaluations, timed "
                                        "here first.", parse=parse_duration, shown="none")
    fit_epochs: bool = setting(False, "With --time-budget: retrain for the most epochs (at most --epochs) "
                               "whose measured cost fits the budget, sized before the first point and "
                               "kept on every resume of the run.")
    share: str = setting("points", "Under torchrun: 'points' spreads the points over the processes; "
                         "'images' computes every point in the first process and splits each "
                         "evaluation's test images over all of them (few points, a large test set).",
                         choices=lambda: SHARES)

    def method_specs(self) -> list[MethodSpec]:
        """The methods, then each mask method quantized by every --quantizers x --bits; a quantized
        method's base (the network it quantizes) comes in before it if not named."""
        given = [MethodSpec.parse(m) for m in self.methods]
        quants = [QuantSpec(QUANTIZERS.get(q), check_bits(b, "in --bits")) for q in self.quantizers
                  for b in self.bits]
        out: dict[str, MethodSpec] = {}
        for m in given:
            out.setdefault(m.base.text, m.base)
            out.setdefault(m.text, m)
            if m.quant is None and not m.pruner.shrinks:
                out.update({q.text: q for q in (m.quantized(spec) for spec in quants)})
        return list(out.values())


def _check_quantized_recipe(rc: RecoveryConfig) -> None:
    """The tables' fine-tuning (`--quant-lr`, `--quant-epochs`) as a retraining recipe of its own."""
    epochs = rc.quant_epochs
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise PrunelabError(f"--quant-epochs must be a whole number >= 1, got {epochs!r}")
    given = (("--quant-lr", rc.quant_lr), ("--quant-epochs", epochs))
    flags = [flag for flag, value in given if value is not None]
    if flags:
        try:
            train_config(rc.for_quantized(), 0)
        except PrunelabError as exc:
            raise PrunelabError(f"{' with '.join(flags)}: {exc}") from None


def check_profile(methods: list[MethodSpec], profile: dict | None) -> None:
    """A sensitivity profile of the kind each method reads: channel methods a channel profile
    (`prunelab sensitivity --channels`), mask methods one of single weights."""
    unit = (profile or {}).get("unit", "weights")  # profiles from before channels were of weights
    for m in methods:
        if profile is None or not m.pruner.needs_profile:
            continue
        if m.pruner.shrinks and unit != "channels":
            raise PrunelabError(f"the profile given is one of single weights; {m.pruner.name} reads a "
                                f"channel profile: run 'prunelab sensitivity CHECKPOINT --channels --out "
                                f"RUN' and pass --sensitivity RUN")
        if not m.pruner.shrinks and unit != "weights":
            raise PrunelabError(f"the profile given is one of channels; {m.pruner.name} reads one of single "
                                f"weights: run 'prunelab sensitivity CHECKPOINT --out RUN' (no --channels)")


MIN_CALIBRATION = 32
"""Calibration images every calibrated method needs at least: channels-rec on the digits network at
50% scored 17% from 2 images, 57% from 8, 84% from 16, 88.6% from 32 and 89.7% from 1,024."""


def _check_layer_cap(cfg: SweepConfig, methods: list[MethodSpec]) -> None:
    """A cap in (0, 1] that every mask method's levels can reach: under it no layer, so not the
    network either, loses more than the cap's share of its weights."""
    cap = cfg.layer_cap
    if cap is None:
        return
    if isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 < cap <= 1:
        raise PrunelabError(f"--layer-cap must be a fraction in (0, 1], got {cap!r}; e.g. --layer-cap 0.8")
    for m in methods:
        over = [lv for lv in m.levels(cfg.levels) if lv > cap] if not m.pruner.shrinks else []
        if over:
            raise PrunelabError(f"{m.text} cannot reach level {over[0]:g} under --layer-cap {cap:g}: no "
                                f"layer may lose more than {100 * cap:g}% of its weights, so neither can the "
                                f"network; pass levels up to {cap:g} or a larger --layer-cap")


def _check_bits(cfg: SweepConfig, methods: list[MethodSpec]) -> None:
    """--bits that quantize something: a scheme to quantize with and a mask method to quantize."""
    if not cfg.bits:
        return
    if not cfg.quantizers:
        raise PrunelabError(f"--bits {','.join(map(str, cfg.bits))} needs a scheme to quantize with; pass "
                            f"--quantizers kmeans and/or uniform")
    if not any(m.quant is not None for m in methods):
        raise PrunelabError(f"--bits {','.join(map(str, cfg.bits))} quantizes mask methods' points, and none "
                            f"of --methods is a mask method; add one (e.g. global)")


def validate(cfg: SweepConfig) -> list[MethodSpec]:
    """Refuse, in one line and before any work, what cannot run; returns the parsed methods."""
    methods = cfg.method_specs()
    for m in methods:
        if m.pruner.needs_profile and not cfg.sensitivity:
            kind = " --channels" if m.pruner.shrinks else ""
            raise PrunelabError(f"the {m.pruner.name} method needs a sensitivity profile: run 'prunelab "
                                f"sensitivity CHECKPOINT{kind} --out RUN' and pass --sensitivity RUN")
    if any(m.pruner.needs_latency_table for m in methods) and not cfg.latency_table:
        raise PrunelabError("the latency methods need a latency table of the network in the target "
                            "runtime: run 'prunelab latency-table CHECKPOINT --out FILE' and pass "
                            "--latency-table FILE")
    train_config(cfg.recovery, 0)  # validates the retraining settings
    _check_quantized_recipe(cfg.recovery)
    for level in cfg.levels:
        check_sparsity(level, "level")
    for flag, value in (("--bn-batches", cfg.recovery.bn_batches), ("--batch-size", cfg.batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PrunelabError(f"{flag} must be a whole number >= 1, got {value!r}")
    if not cfg.seeds:
        raise PrunelabError("no seeds given; pass a comma list such as --seeds 0 or --seeds 0,1,2")
    for seed in cfg.seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise PrunelabError(f"seed {seed!r} in --seeds is not an integer in [0, 2^63); "
                                f"e.g. --seeds 0,1,2")
    _check_layer_cap(cfg, methods)
    _check_bits(cfg, methods)
    if cfg.round_to is not None and (isinstance(cfg.round_to, bool) or not isinstance(cfg.round_to, int)
                                     or cfg.round_to < 1):
        raise PrunelabError(f"--round-to must be a positive integer, got {cfg.round_to!r}")
    if cfg.round_to is not None and methods and not any(m.pruner.shrinks for m in methods):
        raise PrunelabError(f"--round-to {cfg.round_to} rounds channel counts, and none of --methods removes "
                            f"channels; add a channel method (e.g. channels-global) or drop --round-to")
    check_threads(cfg.threads)
    check_runtime(cfg.runtime)
    if cfg.share not in SHARES:
        raise PrunelabError(f"--share must be one of {', '.join(SHARES)}, got {cfg.share!r}")
    if isinstance(cfg.calibration, bool) or not isinstance(cfg.calibration, int) or cfg.calibration < 1:
        raise PrunelabError(f"--calibration must be a positive number of images, got {cfg.calibration!r}")
    block = cfg.obs_block
    if not (0 < cfg.damp < math.inf) or isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise PrunelabError(f"second-order pruning needs a finite --damp > 0 and --obs-block >= 1, got "
                            f"{cfg.damp} and {cfg.obs_block}")
    if any(m.pruner.needs_calibration for m in methods) and cfg.calibration < MIN_CALIBRATION:
        raise PrunelabError(f"--calibration {cfg.calibration} is too few images to fit a network to: the "
                            f"methods that read calibration images take at least {MIN_CALIBRATION}")
    _check_epochs(cfg, methods)
    _check_fit_epochs(cfg, methods)
    return methods


def _check_fit_epochs(cfg: SweepConfig, methods: list[MethodSpec]) -> None:
    """--fit-epochs sizes retraining to --time-budget: it needs both."""
    if not cfg.fit_epochs:
        return
    if cfg.time_budget is None:
        raise PrunelabError("--fit-epochs sizes the retraining epochs to a time budget; pass --time-budget "
                            "(e.g. 8h), with --epochs as the most it may give")
    if not any(m.recovery.trains for m in methods):
        raise PrunelabError("--fit-epochs sizes the retraining epochs, and none of --methods retrains; add a "
                            "retraining method (e.g. global+gradual) or drop --fit-epochs")


def _check_epochs(cfg: SweepConfig, methods: list[MethodSpec]) -> None:
    """A method that retrains gets at least one epoch: with none its point would be stored as
    retrained when it never was."""
    for m in methods:
        tunes = m.quant is not None and m.quant.tuned
        untrained = cfg.recovery.epochs < 1
        if (m.recovery.trains and untrained) or (tunes and cfg.recovery.for_quantized().epochs < 1):
            raise PrunelabError(f"--epochs {cfg.recovery.epochs} would store '{m.text}' as retrained without "
                                f"one step of retraining; pass --epochs >= 1, or the method without its "
                                f"recovery")


def reads_of(cfg: SweepConfig) -> list[str | None]:
    """The paths a command with these settings reads: none of them may be where it writes."""
    return [cfg.checkpoint, cfg.data, cfg.train_data, cfg.sensitivity, cfg.latency_table]
