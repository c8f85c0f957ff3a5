"""What fixes a run's numbers, in two parts: the run's fingerprint (checkpoint, data, pruning
options: every point shares it, and a store written under another is refused) and each method's
recipe (the retraining, batch-norm and calibration settings its points read), so a method with a
recipe of its own joins a run, while the recipe of stored points cannot change. Settings added
after stores were first written enter only when set, so those stores still resume."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from types import SimpleNamespace

import torch
from torch import nn

from ..errors import PrunelabError
from ..io.checkpoint import weights_digest
from ..recovery import RecoveryConfig
from ..recovery.config import BN_SETTINGS, TRAINING_SETTINGS, settings
from .config import SweepConfig
from .spec import MethodSpec
from .workbench import Workbench


def _digest(*tensors) -> str:
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()


def state_sha256(model: nn.Module) -> str:
    """sha256 of a module's tensors (names, dtypes, shapes and values): its identity, wherever
    it came from."""
    digest = hashlib.sha256()
    for name, t in model.state_dict().items():
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint(wb: Workbench) -> dict:
    """The checkpoint's and data's hashes and every setting that changes every point's numbers."""
    cfg, test = wb.cfg, wb.test
    out = {
        "model": wb.card.model,
        "weights_sha256": weights_digest(cfg.checkpoint) if wb.objects is None else state_sha256(wb.model),
        "data": wb.data_name,
        "test_images": len(test),
        "test_sha256": test.digest(),
        "prune_classifier": cfg.prune_classifier,
        "layer_cap": cfg.layer_cap,
        "sensitivity_sha256": hashlib.sha256(json.dumps(wb.profile, sort_keys=True).encode()).hexdigest()
        if wb.profile else None,
    }
    if cfg.train_data is not None:  # only when set, as round_to
        out["train_sha256"] = _digest(wb.train.train.x, wb.train.train.y)
    if cfg.round_to is not None:
        out["round_to"] = cfg.round_to
    if wb.latency_table is not None:  # only when set: the allocation reads it
        out["latency_table_sha256"] = hashlib.sha256(
            json.dumps(wb.latency_table.to_json(), sort_keys=True).encode()).hexdigest()
    return out


def recipe(method: MethodSpec, rc: RecoveryConfig, calibration: dict) -> dict:
    """The settings `method`'s points read beyond the run's: its recovery's, the calibration's
    if its pruner reads images, and a quantized method's table fine-tuning or batch-norm
    re-estimation; {} for a one-shot magnitude method (and the dense baseline)."""
    if method.quant is not None:
        out = recipe(method.base, rc, calibration)
        if method.quant.tuned:
            out["quant_recovery"] = settings(rc.for_quantized(), TRAINING_SETTINGS)
        elif method.quant.recalibrated:
            out["quant_recovery"] = settings(rc, BN_SETTINGS)
        return out
    out = {}
    if method.recovery.settings:
        out["recovery"] = settings(rc, method.recovery.settings)
    if method.pruner is not None and method.pruner.needs_calibration:
        out["calibration"] = calibration
    return out


def recipes(cfg: SweepConfig) -> dict[str, dict]:
    """Every method's recipe, by its text."""
    return {m.text: recipe(m, cfg.recovery, _calibration_settings(cfg)) for m in cfg.method_specs()}


def upgrade(old: dict, methods: Iterable[str]) -> tuple[dict, dict[str, dict]]:
    """A store's fingerprint from before recipes (one 'recovery' and 'calibration' for the whole
    run) as (the run's fingerprint, the recipes of its stored `methods`): what those settings
    meant, read with the defaults of the settings they left out, as they were read then."""
    run = {k: v for k, v in old.items() if k not in ("recovery", "calibration")}
    known = {f.name for f in dataclasses.fields(RecoveryConfig)}
    rc = RecoveryConfig(**{k: v for k, v in (old.get("recovery") or {}).items() if k in known})
    calibration = old.get("calibration", CALIBRATION_DEFAULTS)
    out = {}
    for text in methods:
        try:
            out[text] = recipe(MethodSpec.parse(text, allow_dense=True), rc, calibration)
        except PrunelabError:  # a one-layer point, or a method of another prunelab version
            continue
    return run, out


def _calibration_settings(cfg) -> dict:
    return {"images": cfg.calibration, "seed": cfg.calibration_seed, "damp": cfg.damp, "block": cfg.obs_block}


CALIBRATION_DEFAULTS = _calibration_settings(  # the settings' own defaults: one place for them
    SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(SweepConfig)}))
