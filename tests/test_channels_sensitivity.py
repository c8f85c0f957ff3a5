"""Channel sensitivity: each block's inner channels removed alone for a profile, and the channel
methods it guides (what a curve tolerates, how the groups share a level, the refusals)."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run

from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.sensitivity import run as profile_run
from prunelab.experiment.sweep import Sweep
from prunelab.pruning.methods.channels_sensitivity import sensitivity_counts, tolerances
from prunelab.pruning.structured import ChannelGroup


def _group(root: str, channels: int = 16) -> ChannelGroup:
    importance = torch.arange(channels, dtype=torch.float32) + 1
    return ChannelGroup(root, channels, importance, [("x", "out", None, None)])


def test_a_curve_tolerates_the_largest_ratio_within_each_drop_and_interpolates_between():
    steady, bumpy = _group("steady"), _group("bumpy")
    profile = {"unit": "channels", "dense_top1": 90.0,
               "layers": {"steady": [[0.25, 90.0], [0.5, 88.0], [0.75, 80.0]],
                          "bumpy": [[0.25, 85.0], [0.5, 87.0]]}}  # 0.5 better than 0.25: still a 5-point drop
    tolerances(None, [steady, bumpy], profile=profile, keep_stream=True)
    assert np.allclose(steady.tolerance[0], [0, 2, 10])
    assert np.allclose(steady.tolerance[1], [0.25, 0.5, 0.75])
    assert np.allclose(bumpy.tolerance[0], [0, 5]) and np.allclose(bumpy.tolerance[1], [0, 0.5])
    # one drop for both: at 1 point `steady` is halfway from 0.25 to 0.5, `bumpy` a fifth of the way to 0.5
    assert sensitivity_counts([steady, bumpy], 0.1, [15, 15]) == [6, 1]


def test_the_robust_group_loses_more_and_counts_grow_with_the_ratio():
    robust, fragile = _group("robust"), _group("fragile")
    curve = [0.2, 0.4, 0.6, 0.8]
    profile = {"unit": "channels", "dense_top1": 90.0,
               "layers": {"robust": [[r, 90 - 2 * r] for r in curve],
                          "fragile": [[r, 90 - 40 * r] for r in curve]}}
    tolerances(None, [robust, fragile], profile=profile, keep_stream=True)
    previous = [0, 0]
    for ratio in np.linspace(0, 1, 11):
        counts = sensitivity_counts([robust, fragile], ratio, [15, 15])
        assert all(c >= p for c, p in zip(counts, previous, strict=True))
        previous = counts
    middle = sensitivity_counts([robust, fragile], 0.05, [15, 15])
    assert middle[0] > middle[1]


def config(ckpt, **kw):
    base = dict(checkpoint=str(ckpt), data="digits", methods=(), levels=(0.25, 0.5, 0.75), device="cpu")
    return SweepConfig(**{**base, **kw})


def test_a_channel_profile_guides_the_channel_methods_in_a_sweep(digits_checkpoint, tmp_path, monkeypatch,
                                                                   capsys):
    code, said, err = run(monkeypatch, capsys, "sensitivity", digits_checkpoint, "--channels", "--levels",
                          "0.25,0.5,0.75", "--out", tmp_path / "prof")
    assert code == 0, err
    profile = json.loads((tmp_path / "prof" / "sensitivity.json").read_text())
    assert profile["unit"] == "channels" and set(profile["layers"]) == {"conv1", "conv2", "conv3"}
    assert all(len(curve) == 3 for curve in profile["layers"].values())
    cfg = config(digits_checkpoint, methods=("channels-sensitivity", "channels-rec-sensitivity"),
                 levels=(0.3,), sensitivity=str(tmp_path / "prof"))
    points = [p for p in Sweep(cfg, tmp_path / "sweep").run() if p.method != "dense"]
    assert len(points) == 2 and all(abs(p.sparsity - 0.3) <= 0.05 for p in points)


def test_a_channel_method_without_a_channel_profile_is_one_line(digits_checkpoint, tmp_path, monkeypatch,
                                                                 capsys):
    channel_profile = {"unit": "channels", "dense_top1": 90.0, "layers": {}}
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "sensitivity.json").write_text(json.dumps(channel_profile))
    base = ["sweep", digits_checkpoint, "--methods", "channels-sensitivity", "--levels", "0.3", "--no-report"]
    code, _, err = run(monkeypatch, capsys, *base, "--out", tmp_path / "a")
    assert_user_error(code, err, "channels-sensitivity", "--channels", "--sensitivity RUN")
    sweep = Sweep(config(digits_checkpoint, levels=(0.5,)), tmp_path / "weights")
    profile_run(sweep)  # a profile of single weights
    sweep.store.close()
    code, _, err = run(monkeypatch, capsys, *base, "--sensitivity", tmp_path / "weights", "--out",
                       tmp_path / "b")
    assert_user_error(code, err, "single weights", "--channels")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "sensitivity",
                       "--levels", "0.3", "--no-report", "--sensitivity", tmp_path / "prof", "--out",
                       tmp_path / "c")
    assert_user_error(code, err, "one of channels", "no --channels")


def test_profiling_a_group_that_is_not_one_is_refused():
    from prunelab.models import create_model, model_info
    from prunelab.pruning.structured import prune_group

    model = create_model("smallcnn", 10, 1).eval()
    with pytest.raises(PrunelabError, match="roots no group"):
        prune_group(model, model_info("smallcnn"), torch.zeros(1, 1, 8, 8), "bn1", 0.5)
    r = prune_group(model, model_info("smallcnn"), torch.zeros(1, 1, 8, 8), "conv2", 0.5)
    assert r.channels["conv2"] == (32, 64)
    assert r.channels["conv1"] == (32, 32) and r.channels["conv3"] == (128, 128)
