"""torchrun on the CPU with two gloo processes: DDP training saves one checkpoint; a sweep spreads its
points over the processes and writes one store, equal to a single-process sweep."""

import os
import subprocess
import sys

import pytest

from prunelab.experiment.config import SweepConfig
from prunelab.experiment.store import Store
from prunelab.experiment.sweep import Sweep
from prunelab.io.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # end to end: run by .ci/run with -m slow


def torchrun(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "prunelab", *map(str, args)]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def test_ddp_training_saves_one_checkpoint(tmp_path):
    out = torchrun("train", "--model", "smallcnn", "--data", "digits", "--epochs", "2", "--lr", "0.05",
                   "--batch-size", "64", "--out", tmp_path / "m", cwd=tmp_path)
    assert out.count("saved smallcnn") == 1  # only the first process speaks
    model, meta = load_checkpoint(tmp_path / "m")
    assert meta.epochs == 2 and meta.top1 > 50  # two epochs on digits learn (chance is 10%)
    assert len(list((tmp_path / "m" / "tb").iterdir())) == 1


def test_sweep_over_two_processes_equals_one(digits_checkpoint, tmp_path):
    args = ["--levels", "0,0.3,0.6,0.9", "--methods", "layerwise,global,random", "--seeds", "0,1"]
    torchrun("sweep", digits_checkpoint, *args, "--out", tmp_path / "two", "--no-report", cwd=tmp_path)
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", levels=(0.0, 0.3, 0.6, 0.9),
                      seeds=(0, 1), device="cpu")
    single = {p.key: (p.correct, p.nonzero_params) for p in Sweep(cfg, tmp_path / "one").run()}
    store = Store.open(tmp_path / "two")
    spread = {p.key: (p.correct, p.nonzero_params) for p in store.points()}
    assert spread == single


def test_a_sweep_sharing_each_evaluations_images_over_two_processes_equals_one(digits_checkpoint, tmp_path):
    """--share images: the first process computes every point (a kept obs model and a channel
    point among them), both score half of every evaluation, and the store holds one process's
    counts, image by image."""
    methods = ("layerwise", "random", "obs-global", "channels-global")
    args = ["--levels", "0,0.5,0.8", "--methods", ",".join(methods), "--seeds", "0,1", "--calibration", "64"]
    torchrun("sweep", digits_checkpoint, *args, "--share", "images", "--out", tmp_path / "two",
             "--no-report", cwd=tmp_path)
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", levels=(0.0, 0.5, 0.8), seeds=(0, 1),
                      methods=methods, calibration=64, device="cpu")
    points = Sweep(cfg, tmp_path / "one").run()
    single = {p.key: (p.correct, p.nonzero_params, p.hits.tobytes()) for p in points}
    store = Store.open(tmp_path / "two")
    shared = {p.key: (p.correct, p.nonzero_params, p.hits.tobytes()) for p in store.points()}
    store.close()
    assert shared == single
    assert {key[0] for key in shared} == {"dense", "layerwise", "random", "obs-global", "channels-global"}
