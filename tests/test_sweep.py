"""Sweeps: fresh weights at every point, exact counts, resume equals an uninterrupted run, the answer."""

import numpy as np
import pytest

from prunelab.errors import PrunelabError
from prunelab.experiment.analysis import Curve, answer, largest_within, split
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.spec import parse_levels
from prunelab.experiment.store import DENSE, Store
from prunelab.experiment.sweep import Sweep

LEVELS = (0.0, 0.3, 0.6, 0.9)


def config(ckpt, **kw):
    base = dict(checkpoint=str(ckpt), data="digits", levels=LEVELS, seeds=(0, 1), device="cpu")
    return SweepConfig(**{**base, **kw})


def rows(points):
    return {p.key: (p.correct, p.nonzero_params, round(p.loss, 6), p.hits.tobytes()) for p in points}


def test_points_are_exact_and_fresh(digits_checkpoint, tmp_path):
    sweep = Sweep(config(digits_checkpoint), tmp_path / "run")
    points = sweep.run()
    assert len(points) == 1 + 2 * len(LEVELS) + 2 * len(LEVELS)  # dense, 2 l1 methods, random x 2 seeds
    dense = next(p for p in points if p.method == DENSE)
    for p in points:
        if p.method in ("layerwise", "random"):  # exactly round(s * n) zeros in every layer
            assert all(z == round(p.target_sparsity * n) for z, n in p.layers.values())
        assert abs(p.sparsity - (1 - p.nonzero_params / p.prunable_params)) < 1e-12
        assert "fc.weight" not in p.layers  # classifier kept dense by default
        if p.target_sparsity == 0:
            assert p.correct == dense.correct and p.loss == pytest.approx(dense.loss)
    # No compounding: a point computed after a 90% point equals the same point computed first.
    again = sweep.point("layerwise", 0.3, 0)
    first = next(p for p in points if p.key == ("layerwise", 300000, 0))
    assert (again.correct, again.nonzero_params, again.loss) == (first.correct, first.nonzero_params,
                                                                 first.loss)
    sweep.point("global", 0.9, 0)
    assert sweep.point("dense", 0.0, 0).correct == dense.correct


def test_global_counts_exact(digits_checkpoint, tmp_path):
    points = Sweep(config(digits_checkpoint, methods=("global",)), tmp_path / "g").run()
    for p in points:
        assert p.prunable_params - p.nonzero_params == round(p.target_sparsity * p.prunable_params)


def test_prune_classifier_flag(digits_checkpoint, tmp_path):
    cfg = config(digits_checkpoint, methods=("layerwise",), levels=(0.5,), prune_classifier=True)
    point = [p for p in Sweep(cfg, tmp_path / "c").run() if p.method == "layerwise"][0]
    zeros, size = point.layers["fc.weight"]
    assert zeros == round(0.5 * size)


def test_resume_equals_uninterrupted(digits_checkpoint, tmp_path):
    full = Sweep(config(digits_checkpoint), tmp_path / "full").run()

    sweep = Sweep(config(digits_checkpoint), tmp_path / "cut")
    calls = {"n": 0}

    def interrupt(point):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run(interrupt)
    sweep.store.close()
    resumed = Sweep(config(digits_checkpoint), tmp_path / "cut")
    assert len(resumed.todo) == len(full) - 5
    assert rows(resumed.run()) == rows(full)


def test_store_from_other_configuration_refused(digits_checkpoint, tmp_path):
    Sweep(config(digits_checkpoint, levels=(0.5,)), tmp_path / "run").store.close()
    with pytest.raises(PrunelabError, match="different configuration.*prune_classifier"):
        Sweep(config(digits_checkpoint, levels=(0.5,), prune_classifier=True), tmp_path / "run")
    # Adding levels or methods to the same configuration is a resume, not a conflict.
    assert len(Sweep(config(digits_checkpoint, levels=(0.5, 0.7)), tmp_path / "run").todo) > 0


def test_parse_levels():
    assert parse_levels("0:1:0.05") == tuple(round(i * 0.05, 6) for i in range(21))
    assert parse_levels("0.5,0.1") == (0.1, 0.5)
    for bad in ("0:1.5:0.5", "a,b", "1:0:0.1", "0,2"):
        with pytest.raises(PrunelabError):
            parse_levels(bad)


def test_largest_within_needs_every_lower_level():
    top1 = np.array([90.0, 89.5, 88.0, 89.9])  # the 3rd level breaks the run; the 4th does not count
    assert largest_within(top1, np.array(90.0), 1.0) == 1
    assert largest_within(top1, np.array(90.0), 0.1) == 0


def _curve(levels, hits):
    hits = np.asarray(hits, dtype=float)
    return Curve("m", np.array(levels), np.array(levels), 100 * hits.mean(1), np.zeros(len(levels)),
                 hits, 1)


def test_answer_and_paired_bootstrap():
    rng = np.random.default_rng(0)
    n = 2000
    dense_hits = rng.random(n) < 0.9
    flip = rng.random(n)
    # Level 0.5 loses 0.2 points, level 0.8 loses 5 points: the answer is 0.5, and stable.
    hits = [dense_hits & (flip > 0.002), dense_hits & (flip > 0.055)]

    class D:
        top1 = 100 * dense_hits.mean()

    D.hits = dense_hits
    a = answer(D, _curve([0.5, 0.8], hits), budget=1.0, n_boot=500)
    assert a.sparsity == 0.5 and a.ci_low == 0.5 and a.ci_high == 0.5
    assert a.drop == pytest.approx(100 * (dense_hits.mean() - hits[0].mean()))
    tight = answer(D, _curve([0.5, 0.8], hits), budget=0.2, n_boot=500)
    assert tight.ci_low <= tight.sparsity <= tight.ci_high and tight.ci_low == 0.0


def test_split_needs_dense(tmp_path):
    with pytest.raises(PrunelabError, match="dense baseline"):
        split([])
    store = Store.create(tmp_path, {"a": 1}, {})
    assert store.points() == []


def test_a_sweep_told_to_stop_stores_what_it_did_and_the_same_sweep_finishes(digits_checkpoint, tmp_path):
    cfg = config(digits_checkpoint, methods=("global",), seeds=(0,))
    sweep = Sweep(cfg, tmp_path / "run")
    asked = []
    points = sweep.run(should_stop=lambda: asked.append(1) or len(asked) > 2)  # a time box runs out
    assert len(points) == 2 and len(sweep.todo) == len(LEVELS) - 1
    sweep.store.close()
    again = Sweep(cfg, tmp_path / "run")
    assert len(again.todo) == len(LEVELS) - 1
    assert rows(again.run()) == rows(Sweep(cfg, tmp_path / "whole").run())


def test_a_sweep_over_its_time_budget_is_refused_before_any_point(digits_checkpoint, tmp_path, monkeypatch,
                                                                   capsys):
    from cli_helpers import assert_user_error, run

    args = ("sweep", digits_checkpoint, "--methods", "global,global+ft", "--levels", "0.5,0.8", "--epochs", 2,
            "--device", "cpu", "--no-report", "--out", tmp_path / "run")
    code, _, err = run(monkeypatch, capsys, *args, "--time-budget", "0.001s")
    assert_user_error(code, err, "5 points still to compute are estimated at", "retraining steps",
                      "--time-budget of 0 s")
    assert not (tmp_path / "run").exists()  # the refusal leaves no folder behind it
    code, out, err = run(monkeypatch, capsys, *args, "--time-budget", "1h")
    assert code == 0, err
    assert "time budget 1.00 h: 5 points at --epochs 2, estimated at" in out
