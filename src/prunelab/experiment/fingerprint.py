"""What fixes a run's numbers: a store written under another fingerprint is refused, never mixed.
Settings added after stores were first written enter only when set, so those stores still resume."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict
from types import SimpleNamespace

from ..io.checkpoint import weights_digest
from ..recovery import RecoveryConfig
from .config import SweepConfig
from .workbench import Workbench


def _digest(*tensors) -> str:
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()


def recovery_fingerprint(rc: RecoveryConfig, recalibrates: bool) -> dict:
    """The retraining settings that fix results; distillation's only when it is on, and how batch
    norm is re-estimated only in runs whose recoveries do it, or when it is not the default
    (stores written before either existed resume, and a quantized '+bn' method joins a run
    whose recipe it shares)."""
    fields = asdict(rc)
    if rc.distill == 0:
        del fields["distill"], fields["temperature"]
    if not recalibrates and rc.bn_augment == RecoveryConfig.bn_augment:
        del fields["bn_augment"]
    if rc.quant_lr is None:  # only when set, as round_to
        del fields["quant_lr"]
    return fields


def fingerprint(wb: Workbench) -> dict:
    """The checkpoint's and data's hashes and every setting that changes a point's numbers."""
    cfg, test = wb.cfg, wb.data.test
    recalibrates = any(m.recovery.recalibrates for m in cfg.method_specs())
    out = {
        "model": wb.card.model,
        "weights_sha256": weights_digest(cfg.checkpoint),
        "data": wb.data.name,
        "test_images": len(test),
        "test_sha256": _digest(test.x, test.y),
        "prune_classifier": cfg.prune_classifier,
        "layer_cap": cfg.layer_cap,
        "recovery": recovery_fingerprint(cfg.recovery, recalibrates),
        "sensitivity_sha256": hashlib.sha256(json.dumps(wb.profile, sort_keys=True).encode()).hexdigest()
        if wb.profile else None,
    }
    if cfg.train_data is not None:  # only when set, as round_to
        out["train_sha256"] = _digest(wb.train.train.x, wb.train.train.y)
    if cfg.round_to is not None:
        out["round_to"] = cfg.round_to
    calibration = _calibration_settings(cfg)
    if calibration != CALIBRATION_DEFAULTS:  # only when changed, as round_to
        out["calibration"] = calibration
    return out


def _calibration_settings(cfg) -> dict:
    return {"images": cfg.calibration, "seed": cfg.calibration_seed, "damp": cfg.damp, "block": cfg.obs_block}


CALIBRATION_DEFAULTS = _calibration_settings(  # the settings' own defaults: one place for them
    SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(SweepConfig)}))
