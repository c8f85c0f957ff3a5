"""Inputs are checked for what they mean, not only their type (issue 39): values that would be cast,
multiplied in or silently ignored end in one line and exit 2 before anything is stored."""

import json
import shutil

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run
from safetensors.torch import load_file, save_file

from prunelab.errors import PrunelabError, PrunelabWarning
from prunelab.io.checkpoint import INDEX_FILE, load_checkpoint, save_checkpoint


def sweep(monkeypatch, capsys, tmp_path, checkpoint, *args):
    """`prunelab sweep` into a fresh folder; (code, err), and whether a store was left."""
    code, _, err = run(monkeypatch, capsys, "sweep", checkpoint, *args, "--out", tmp_path / "run",
                       "--no-report")
    return code, err, (tmp_path / "run" / "results.sqlite").exists()


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32])
def test_integer_weights_are_refused_not_cast_to_float(monkeypatch, capsys, tmp_path, digits_checkpoint,
                                                       dtype):
    bad = shutil.copytree(digits_checkpoint, tmp_path / "ck")
    state = {k: v.round().to(dtype) if v.is_floating_point() else v
             for k, v in load_file(bad / "model.safetensors").items()}
    save_file(state, bad / "model.safetensors", metadata={"model": "smallcnn"})
    code, err, stored = sweep(monkeypatch, capsys, tmp_path, bad, "--levels", "0.5", "--methods", "global")
    assert_user_error(code, err, "conv1.weight", str(dtype).removeprefix("torch."), "not floating point")
    assert not stored

    torch.save(state, tmp_path / "int.th")  # a foreign file: the same check, never 'retraining diverged'
    code, err, _ = sweep(monkeypatch, capsys, tmp_path, tmp_path / "int.th", "--model", "smallcnn")
    assert_user_error(code, err, "not floating point")
    assert "diverged" not in err


@pytest.mark.parametrize("mask", [lambda w: torch.full_like(w, 0.5), lambda w: torch.randn_like(w),
                                  lambda w: torch.full_like(w, 2.0)])
def test_a_prune_mask_that_is_not_zero_or_one_is_refused(tmp_path, digits_checkpoint, mask):
    state, _ = load_checkpoint(digits_checkpoint)
    state = state.state_dict()
    weight = state.pop("conv2.weight")
    torch.save({**state, "conv2.weight_orig": weight, "conv2.weight_mask": mask(weight)}, tmp_path / "m.pt")
    with pytest.raises(PrunelabError, match="conv2.weight_mask holds .* not 0 or 1"):
        load_checkpoint(tmp_path / "m.pt", "smallcnn")


@pytest.fixture(scope="module")
def no_training_images(tmp_path_factory, digits):
    """The digits test images with an empty training split, as an npz."""
    path = tmp_path_factory.mktemp("data") / "notrain.npz"
    np.savez(path, x_train=np.zeros((0, 8, 8, 1), np.uint8), y_train=np.zeros(0, np.int64),
             x_test=digits.test.x.numpy().transpose(0, 2, 3, 1), y_test=digits.test.y.numpy())
    return path


@pytest.mark.parametrize("method", ["global+bn", "global+ft", "obs", "global@kmeans4+bn"])
def test_methods_that_read_training_images_refuse_a_split_with_none(monkeypatch, capsys, tmp_path,
                                                                    digits_checkpoint, no_training_images,
                                                                    method):
    code, err, stored = sweep(monkeypatch, capsys, tmp_path, digits_checkpoint, "--data", no_training_images,
                              "--methods", method, "--levels", "0.5", "--epochs", "1")
    assert_user_error(code, err, "no training images", "--train-data")
    assert not stored


def test_training_refuses_a_split_with_no_images_before_making_its_folder(monkeypatch, capsys, tmp_path,
                                                                         no_training_images):
    code, _, err = run(monkeypatch, capsys, "train", "--model", "smallcnn", "--data", no_training_images,
                       "--out", tmp_path / "m")
    assert_user_error(code, err, "no training images")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args,needles", [
    (["--methods", "global+ft", "--epochs", "0"], ["--epochs 0", "global+ft", "retrained"]),
    (["--methods", "global@kmeans4+ft", "--epochs", "0"], ["--epochs 0"]),
    (["--methods", "channels-rec", "--calibration", "1"], ["--calibration 1", "at least 32"]),
    (["--methods", "obs", "--calibration", "8"], ["--calibration 8", "at least 32"]),
    (["--methods", "blocks", "--calibration", "31"], ["--calibration 31", "at least 32"]),
    (["--methods", "global", "--layer-cap", "0.1", "--levels", "0.5"], ["cannot reach level 0.5",
                                                                         "--layer-cap 0.1"]),
    (["--methods", "layerwise", "--layer-cap", "0.3"], ["cannot reach level 0.35"]),  # the default grid
    (["--methods", "channels-global", "--round-to", "1000"], ["--round-to 1000", "at most 128"]),
    (["--methods", "global", "--round-to", "8"], ["--round-to 8", "channel method"]),
    (["--levels", "geometric:0:3"], ["all 0", "nothing would be pruned"]),
    (["--levels", "0,0.0"], ["all 0"]),
    (["--methods", "global", "--bits", "4", "--quantizers", ""], ["--bits 4", "--quantizers"]),
    (["--methods", "channels-global", "--bits", "4"], ["--bits 4", "mask method"]),
])
def test_options_that_cannot_take_effect_are_refused_before_any_work(monkeypatch, capsys, tmp_path,
                                                                     digits_checkpoint, args, needles):
    if "--levels" not in args:
        args = [*args, "--levels", "0.5"] if "--layer-cap" not in args else args
    code, err, stored = sweep(monkeypatch, capsys, tmp_path, digits_checkpoint, *args)
    assert_user_error(code, err, *needles)
    assert not stored


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e-3, 0.0])
def test_a_latency_table_holds_finite_positive_seconds(monkeypatch, capsys, tmp_path, digits_checkpoint,
                                                       value):
    code, _, err = run(monkeypatch, capsys, "latency-table", digits_checkpoint, "--runtime", "torch", "--out",
                       tmp_path / "t.json")
    assert code == 0, err
    table = json.loads((tmp_path / "t.json").read_text())
    first = next(iter(table["layers"].values()))
    first["seconds"][0][0] = value
    (tmp_path / "t.json").write_text(json.dumps(table))
    code, err, stored = sweep(monkeypatch, capsys, tmp_path, digits_checkpoint, "--methods",
                              "channels-latency", "--levels", "0.5", "--latency-table", tmp_path / "t.json")
    assert_user_error(code, err, "seconds, not a time > 0")
    assert not stored


def test_a_shard_index_without_digests_loads_with_a_warning_naming_the_shards(tmp_path, digits_checkpoint):
    model, card = load_checkpoint(digits_checkpoint)
    save_checkpoint(tmp_path / "sh", model, card, max_shard_bytes=300_000)
    index = json.loads((tmp_path / "sh" / INDEX_FILE).read_text())
    del index["metadata"]["sha256"]
    (tmp_path / "sh" / INDEX_FILE).write_text(json.dumps(index))
    with pytest.warns(PrunelabWarning, match=r"no sha256 for \d+ of \d+ shards \(model-00001-of-"):
        loaded, _ = load_checkpoint(tmp_path / "sh")
    assert all(torch.equal(a, b)
               for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True))


def test_the_cli_shows_that_warning_on_one_line(monkeypatch, capsys, tmp_path, digits_checkpoint):
    model, card = load_checkpoint(digits_checkpoint)
    save_checkpoint(tmp_path / "sh", model, card, max_shard_bytes=300_000)
    index = json.loads((tmp_path / "sh" / INDEX_FILE).read_text())
    del index["metadata"]["sha256"]
    (tmp_path / "sh" / INDEX_FILE).write_text(json.dumps(index))
    code, _, err = run(monkeypatch, capsys, "export", "--checkpoint", tmp_path / "sh", "--method", "global",
                       "--level", "0.5", "--format", "sparse", "--out", tmp_path / "x.sparse")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "sha256" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: checkpoint"), err
