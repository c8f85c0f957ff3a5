"""Sensitivity: one layer pruned at a time, a resumable profile, and the method it guides."""

import json

import pytest

from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.point import run_point
from prunelab.experiment.sensitivity import PREFIX, layer_method, plan, run
from prunelab.experiment.sweep import Sweep


def config(ckpt, **kw):
    base = dict(checkpoint=str(ckpt), data="digits", methods=(), levels=(0.5, 1.0), device="cpu")
    return SweepConfig(**{**base, **kw})


def test_one_layer_at_a_time_and_profile(digits_checkpoint, tmp_path):
    sweep = Sweep(config(digits_checkpoint), tmp_path)
    point = run_point(layer_method("conv2.weight"), 0.5, 0, sweep.workbench, sweep.folder)
    zeros = {name: z for name, (z, _) in point.layers.items()}
    assert zeros["conv2.weight"] == round(0.5 * point.layers["conv2.weight"][1])
    assert zeros["conv1.weight"] == zeros["conv3.weight"] == 0  # the other layers untouched

    profile = run(sweep)
    assert set(profile["layers"]) == set(sweep.workbench.prunable) and "fc.weight" not in profile["layers"]
    assert all(len(curve) == 2 for curve in profile["layers"].values())
    assert json.loads((tmp_path / "sensitivity.json").read_text()) == profile
    assert plan(sweep) == []  # resumable: nothing left to compute
    stored = {p.method for p in sweep.store.points()}
    assert {PREFIX + n for n in sweep.workbench.prunable} <= stored


def test_sensitivity_method_in_a_sweep(digits_checkpoint, tmp_path):
    sweep = Sweep(config(digits_checkpoint), tmp_path / "sens")
    run(sweep)
    sweep.store.close()
    cfg = config(digits_checkpoint, methods=("sensitivity",), levels=(0.3, 0.6),
                 sensitivity=str(tmp_path / "sens"))
    points = [p for p in Sweep(cfg, tmp_path / "sweep").run() if p.method == "sensitivity"]
    for p in points:
        assert p.prunable_params - p.nonzero_params == round(p.target_sparsity * p.prunable_params)
    with pytest.raises(PrunelabError, match="sensitivity profile"):
        Sweep(config(digits_checkpoint, methods=("sensitivity",)), tmp_path / "other")
