"""The GPU study's one command, rehearsed on the CPU: the data pack, every stage, what comes back
within the device's limits, and the reassembly at home into run folders prunelab reads."""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run
from PIL import Image

from prunelab.experiment.store import Store

pytestmark = pytest.mark.slow  # end to end: run by .ci/run with -m slow

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "bench" / "gpu"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


pack = _module("pack")
study_module = _module("study")


def photos(n: int, seed: int, noise: float = 12.0) -> np.ndarray:
    """uint8 (n, 32, 32, 3) images with smooth structure and noise, as photographs have."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.float64)
    smooth = np.kron(coarse, np.ones((1, 8, 8, 1)))
    return np.clip(smooth + rng.normal(0, noise, smooth.shape), 0, 255).astype(np.uint8)


def jpeg_files(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    files = []
    for image in x:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=75)
        files.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.zeros(len(files) + 1, np.int64)
    offsets[1:] = np.cumsum([len(f) for f in files])
    return np.concatenate(files), offsets


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two files laid out as ../shared's: all 480 training and 160 test images as JPEG q75, and the
    exact pixels of some of them with their positions."""
    folder = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    x_train, x_test = photos(480, 1), photos(160, 2)
    y_train, y_test = rng.integers(0, 10, 480), rng.integers(0, 10, 160)
    (tj, to), (sj, so) = jpeg_files(x_train), jpeg_files(x_test)
    np.savez(folder / "full.npz", train_jpeg=tj, train_offsets=to, test_jpeg=sj, test_offsets=so,
             y_train=y_train, y_test=y_test)
    train_index, test_index = np.arange(0, 480, 3), np.arange(100)
    np.savez(folder / "subset.npz", x_train=x_train[train_index], y_train=y_train[train_index],
             x_test=x_test[test_index], y_test=y_test[test_index], train_index=train_index,
             test_index=test_index)
    return {"subset": folder / "subset.npz", "full": folder / "full.npz", "x_train": x_train,
            "x_test": x_test, "train_index": train_index, "test_index": test_index}


@pytest.fixture(scope="module")
def packed(sources, tmp_path_factory):
    path = tmp_path_factory.mktemp("pack") / "pack.npz"
    pack.pack(sources["subset"], sources["full"], path)
    return path


def test_the_lossless_codec_gives_back_every_pixel():
    rng = np.random.default_rng(0)
    for x in (rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8), np.full((2, 1, 1, 3), 255, np.uint8),
              np.zeros((1, 4, 4, 3), np.uint8), photos(20, 3)):
        assert np.array_equal(pack.decode_lossless(pack.encode_lossless(x), x.shape), x)
    smooth = photos(50, 4, noise=1.0)
    assert len(pack.encode_lossless(smooth)) < 0.5 * smooth.nbytes  # predicted residuals compress


def test_the_pack_holds_exact_pixels_where_known_and_jpeg_elsewhere(sources, packed, tmp_path):
    from prunelab.data import decode_jpegs as _decode_jpegs

    mixed_path, exact_path, report = pack.unpack(packed, tmp_path)
    mixed, exact = np.load(mixed_path), np.load(exact_path)
    full = np.load(sources["full"])
    jpeg_train = _decode_jpegs(full["train_jpeg"], full["train_offsets"], "train")
    known = sources["train_index"]
    others = np.setdiff1d(np.arange(480), known)
    assert np.array_equal(mixed["x_train"][known], sources["x_train"][known])  # the exact pixels
    assert np.array_equal(mixed["x_train"][others], jpeg_train[others])  # JPEG where none is known
    assert not np.array_equal(mixed["x_train"][known], jpeg_train[known])  # (they do differ)
    assert np.array_equal(mixed["y_train"], full["y_train"])
    assert np.array_equal(mixed["x_test"], _decode_jpegs(full["test_jpeg"], full["test_offsets"], "t"))
    assert np.array_equal(exact["x_test"], sources["x_test"][sources["test_index"]])
    assert len(exact["x_train"]) == 0 and all(report["hash_matches"].values())
    z = np.load(packed)
    assert len(z["jpeg_train"]) < len(full["train_jpeg"])  # the exact images' JPEG copies stay home


def study(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(GPU / "study.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def smoke(packed, tmp_path_factory):
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    done = study("--smoke", "--pack", packed, "--out", out, "--work", work)
    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(out / "study.tar.gz") as tar:
        names = tar.getnames()
        record = json.load(tar.extractfile("study.json"))
    return out, names, record, done.stdout


def test_the_smoke_study_runs_every_stage_within_what_the_device_returns(smoke):
    out, names, record, log = smoke
    stages = ["environment", "data", "bench", "train", "classic-exact", "global-exact", "classic-jpeg",
              "global-jpeg", "recovery", "export"]
    assert list(record["stages"]) == stages
    assert all(s["status"] == "done" for s in record["stages"].values()), record["stages"]
    assert study_module.returned_files(out) == []  # at most 8 files of 16 MiB, 2 folders down
    shards = sorted((out / "model").glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and all(s.stat().st_size <= study_module.SMOKE.shard_bytes for s in shards)
    for run_name in ("classic-exact", "global-exact", "classic-jpeg", "global-jpeg", "iter-exact"):
        assert f"runs/{run_name}/results.sqlite" in names and f"runs/{run_name}/config.json" in names
    assert not any("/chains/" in n or "/partial/" in n for n in names)  # too large to come back
    assert any(n.startswith("runs/iter-exact/models/") and n.endswith(".sparse") for n in names)
    answers = record["answers"]
    assert answers["classic-exact/layerwise"]["images"] == 100  # the exact test images
    assert answers["classic-jpeg/layerwise"]["images"] == 160  # the JPEG test images
    assert len(answers["classic-exact/layerwise"]["curve"]) == len(study_module.SMOKE.levels)
    bench = record["bench"]
    assert bench["train_images_per_s"] > 0 and bench["train_flops_per_image"] > 0
    assert record["train"]["epochs"] == 2 and "stage export: done" in log


def test_what_came_back_reassembles_into_runs_prunelab_reads(smoke, packed, tmp_path, monkeypatch, capsys):
    out, _, _, _ = smoke
    home = tmp_path / "home"
    record = _module("reassemble").reassemble(out, home, gif=False)
    assert set(record["reports"]) == {"classic-exact", "classic-jpeg", "global-exact", "global-jpeg",
                                      "iter-exact"}
    assert all(Path(r).is_file() for r in record["reports"].values()), record["reports"]
    runs = home / "runs"
    code, stdout, err = run(monkeypatch, capsys, "export", runs / "iter-exact", "--method", "global+iter",
                            "--level", 0.8, "--format", "sparse", "--out", tmp_path / "r.sparse")
    assert code == 0 and "bit-exact" in stdout, err  # the recovered network that was measured
    code, stdout, err = run(monkeypatch, capsys, "export", runs / "global-exact", "--method", "global",
                            "--level", 0.5, "--format", "sparse", "--out", tmp_path / "g.sparse")
    assert code == 0 and "bit-exact" in stdout, err  # rebuilt from the shards, found beside the run
    exact = tmp_path / "exact.npz"
    pack.unpack(packed, tmp_path)
    code, stdout, err = run(monkeypatch, capsys, "sweep", home / "model", "--data", exact, "--methods",
                            "global", "--levels", 0.5, "--out", tmp_path / "again", "--no-report")
    assert code == 0, err
    store = Store.open(tmp_path / "again")
    here = {p.method: p.top1 for p in store.points()}
    store.close()
    there = json.loads((home / "study.json").read_text())["answers"]["global-exact/global"]
    assert here["global"] == dict(there["curve"])[0.5]  # the same shards, the same number


def test_a_missing_pack_or_a_time_box_too_small_is_one_line_and_keeps_what_was_done(packed, tmp_path):
    done = study("--smoke", "--pack", tmp_path / "none.npz", "--out", tmp_path / "a", "--work",
                 tmp_path / "w1")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "data pack" in lines[0] and "prepare.py" in lines[0]
    done = study("--smoke", "--budget-s", 1, "--pack", packed, "--out", tmp_path / "b", "--work",
                 tmp_path / "w2")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "less than one epoch" in lines[0], done.stderr
    with tarfile.open(tmp_path / "b" / "study.tar.gz") as tar:
        record = json.load(tar.extractfile("study.json"))
    assert record["bench"]["train_images_per_s"] > 0 and record["exit_code"] == 2  # measured, kept

