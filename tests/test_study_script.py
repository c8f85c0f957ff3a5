"""bench/cpu/study_resnet50.sh, the ResNet-50 study's one command, runs every stage end to end on a
small network and small files, and resumes: run again, it computes nothing new."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.experiment.store import Store
from prunelab.io.checkpoint import save_checkpoint
from prunelab.models import ModelCard, create_model

pytestmark = pytest.mark.slow  # nine sweeps in subprocesses: about a minute
ROOT = Path(__file__).resolve().parents[1]
STAGES = ("classic", "magnitude", "oneshot", "oneshot-res", "structured", "jpeg", "jpeg-classic")


def cifar_like(path, n_train, n_test, seed):
    g = np.random.default_rng(seed)
    images = {split: g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
              for split, n in (("train", n_train), ("test", n_test))}
    np.savez(path, x_train=images["train"], y_train=g.integers(0, 10, n_train), x_test=images["test"],
             y_test=g.integers(0, 10, n_test))


def small_inputs(tmp_path, subset_train: int, jpeg_train: int) -> None:
    """What the ResNet-50 scripts read, small: ../shared's two CIFAR files (60 and 80 test images)
    and an untrained ResNet-20 checkpoint in tmp_path/ck."""
    data = tmp_path / "shared" / "data" / "cifar10"
    data.mkdir(parents=True)
    cifar_like(data / "cifar10_subset.npz", subset_train, 60, 0)
    cifar_like(data / "cifar10_full_jpeg_q75.npz", jpeg_train, 80, 1)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", create_model("resnet20").eval(),
                    ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3, input_size=32))


def run_script(tmp_path, script: str, env: dict[str, str]) -> str:
    """Run bench/cpu/`script` on small_inputs' files (its run folders under tmp_path), `env` over
    the defaults; it must succeed. Its stdout."""
    env = {**os.environ, "CHECKPOINT": str(tmp_path / "ck"), "SHARED": str(tmp_path / "shared"),
           "OMP_NUM_THREADS": "1", "PRUNELAB_CACHE": str(tmp_path / "cache"), **env}
    done = subprocess.run(["bash", f"bench/cpu/{script}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def run_study(tmp_path):
    return run_script(tmp_path, "study_resnet50.sh",
                      {"OUT": str(tmp_path / "r50"), "LEVELS": "0.5", "SWEEP_ARGS": "--calibration 64"})


def test_the_study_script_runs_every_stage_and_resumes(tmp_path):
    small_inputs(tmp_path, 300, 400)
    run_study(tmp_path)
    counts = {}
    for stage in STAGES:
        store = Store.open(tmp_path / "r50" / stage)
        counts[stage] = sorted((p.method, p.target_sparsity, p.seed, p.correct) for p in store.points())
        store.close()
        assert any(m != "dense" for m, *_ in counts[stage]), stage
    assert {m for m, *_ in counts["magnitude"]} == {"dense", "layerwise", "global", "lamp", "random"}
    store = Store.open(tmp_path / "r50" / "jpeg")
    assert {p.n_images for p in store.points()} == {80}  # the JPEG file's test split
    assert {p.seed for p in store.points() if p.method == "random"} == {0, 1, 2}
    store.close()
    assert {m for m, *_ in counts["jpeg-classic"]} == {"dense", "layerwise"}
    quantized = {m for m, *_ in counts["oneshot"] if "@" in m}  # the quant stage, beside its base points
    assert quantized == {f"{base}@kmeans{b}+bn" for base in ("global+bn", "obs-global+bn") for b in (4, 3)}
    again = run_study(tmp_path)  # resumed: every point is stored already
    for stage in STAGES:
        store = Store.open(tmp_path / "r50" / stage)
        points = sorted((p.method, p.target_sparsity, p.seed, p.correct) for p in store.points())
        assert points == counts[stage]
        store.close()
    assert again.count("== ") == 10
