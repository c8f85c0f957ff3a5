"""Inputs that would give a confident wrong answer, or a traceback, are one line and exit 2 (issue 18):
bad tensors and cards in checkpoints, data that does not fit the network, mistyped config files."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as torch_prune
from cli_helpers import assert_user_error, run
from safetensors.torch import load_file, save_file
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.io.checkpoint import load_checkpoint, save_checkpoint
from prunelab.measure import evaluate
from prunelab.models import ModelCard, create_model


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_checkpoint_with_one_non_finite_weight_is_refused_naming_the_tensor(
        monkeypatch, capsys, tmp_path, digits_checkpoint, value):
    bad = tmp_path / "ckpt"
    shutil.copytree(digits_checkpoint, bad)
    state = load_file(bad / "model.safetensors")
    state["conv2.weight"] = state["conv2.weight"].clone()
    state["conv2.weight"].view(-1)[7] = value
    save_file(state, bad / "model.safetensors", metadata={"model": "smallcnn"})
    code, _, err = run(monkeypatch, capsys, "sweep", bad, "--levels", "0.5", "--out", tmp_path / "run")
    assert_user_error(code, err, "conv2.weight", "NaN/inf")
    assert not (tmp_path / "run" / "results.sqlite").exists()

    torch.save(state, tmp_path / "plain.pt")  # a foreign torch file is checked the same way
    with pytest.raises(PrunelabError, match="conv2.weight"):
        load_checkpoint(tmp_path / "plain.pt", "smallcnn")


@pytest.mark.parametrize("edit,needles", [
    ({"num_classes": 10**12}, ["num_classes 1000000000000", "1 to 1,000,000"]),
    ({"in_channels": 0}, ["in_channels 0"]),
])
def test_a_model_card_that_cannot_be_the_network_is_refused_before_building_it(
        tmp_path, digits_checkpoint, edit, needles):
    bad = tmp_path / "ckpt"
    shutil.copytree(digits_checkpoint, bad)
    card = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**card, **edit}))
    with pytest.raises(PrunelabError) as exc:
        load_checkpoint(bad)
    for needle in needles:
        assert needle in str(exc.value)


def test_a_checkpoint_saved_under_torch_prune_loads_as_the_pruned_network(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            torch_prune.l1_unstructured(module, "weight", amount=0.4)
    model.eval()
    torch.save(model.state_dict(), tmp_path / "pruned.pt")  # holds weight_orig and weight_mask
    assert any(k.endswith("weight_mask") for k in model.state_dict())

    loaded, _ = load_checkpoint(tmp_path / "pruned.pt", "resnet20")
    assert torch.equal(loaded.conv1.weight, model.conv1.weight)  # weight_orig * weight_mask
    zeros = sum(int((m.weight == 0).sum()) for m in loaded.modules() if isinstance(m, nn.Conv2d))
    total = sum(m.weight.numel() for m in loaded.modules() if isinstance(m, nn.Conv2d))
    assert zeros / total == pytest.approx(0.4, abs=0.01)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), model(x))


def _npz(path, size=32, channels=3, n_test=8):
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)  # noqa: E731
    np.savez(path, x_train=images(8), y_train=rng.integers(0, 10, 8), x_test=images(n_test),
             y_test=rng.integers(0, 10, n_test))
    return path


@pytest.fixture(scope="module")
def resnet20_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("r20") / "resnet20.pt"
    torch.manual_seed(0)
    torch.save(create_model("resnet20").state_dict(), path)
    return path


@pytest.mark.parametrize("data,needles", [
    (dict(size=4), ["4x4 images", "takes 32x32"]),  # CIFAR ResNets pool adaptively: 4x4 would run
    (dict(channels=1), ["1-channel images"]),
    (dict(n_test=0), ["no test images"]),
])
def test_data_that_does_not_fit_the_network_is_refused(monkeypatch, capsys, tmp_path, resnet20_pt, data,
                                                       needles):
    npz = _npz(tmp_path / "data.npz", **data)
    code, _, err = run(monkeypatch, capsys, "sweep", resnet20_pt, "--model", "resnet20", "--data", npz,
                       "--levels", "0.5", "--out", tmp_path / "run")
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_a_checkpoint_with_other_classes_than_the_data_is_refused_unless_allowed(monkeypatch, capsys,
                                                                                tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "c100", create_model("smallcnn", 100, 1),
                    ModelCard("smallcnn", 100, 1, (0.5,), (0.5,), input_size=8))
    args = ["sweep", tmp_path / "c100", "--levels", "0.5", "--methods", "global"]
    code, _, err = run(monkeypatch, capsys, *args, "--out", tmp_path / "run")
    assert_user_error(code, err, "10 classes", "100 outputs", "--no-classes-match")
    code, _, err = run(monkeypatch, capsys, *args, "--no-classes-match", "--out", tmp_path / "run2")
    assert code == 0, err


@pytest.mark.parametrize("text,needles", [
    ("levels = 5", ["levels must be a list of numbers, got 5"]),
    ('prune_classifier = "yes"', ["prune_classifier must be true or false"]),
    ("batch_size = 2.5", ["batch_size must be a whole number"]),
    ('methods = ["global", 3]', ["methods must be a list of strings"]),
    ("recovery = 3", ["recovery must be a table"]),
    ('[recovery]\nepochs = "x"', ["recovery: epochs must be a whole number"]),
    ("layer_cap = [0.5]", ["layer_cap must be a number"]),
])
def test_a_config_file_value_of_the_wrong_type_is_one_line(monkeypatch, capsys, tmp_path, digits_checkpoint,
                                                           text, needles):
    (tmp_path / "c.toml").write_text(text + "\n")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--config", tmp_path / "c.toml",
                       "--out", tmp_path / "run")
    assert_user_error(code, err, "c.toml", *needles)
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_a_config_file_may_give_levels_as_text_and_numbers_as_ints(tmp_path):
    from prunelab.config import resolve
    from prunelab.experiment.config import SweepConfig

    (tmp_path / "c.toml").write_text('levels = "0:1:0.5"\nlayer_cap = 1\n[recovery]\nlr = 1\n')
    cfg = resolve(SweepConfig, tmp_path / "c.toml", checkpoint="x")
    assert cfg.levels == (0.0, 0.5, 1.0)
    assert cfg.layer_cap == 1.0 and isinstance(cfg.layer_cap, float)
    assert cfg.recovery.lr == 1.0 and isinstance(cfg.recovery.lr, float)


class _Overflowing(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :3].clone()
        out[1, 0] = float("inf")
        return out


def test_an_evaluation_with_non_finite_outputs_stops_instead_of_scoring():
    x, y = torch.randn(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(PrunelabError, match="NaN or inf on 1 of 4 images"):
        evaluate(_Overflowing(), x, y)


def test_export_refuses_an_input_size_below_one_pixel(monkeypatch, capsys, tmp_path, digits_checkpoint):
    code, _, err = run(monkeypatch, capsys, "export", "--checkpoint", digits_checkpoint, "--method", "global",
                       "--level", "0.5", "--format", "onnx", "--input-size", "0",
                       "--out", tmp_path / "m.onnx")
    assert_user_error(code, err, "--input-size", "at least 1")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_written_take_the_umask_mode_not_0600(tmp_path, digits_checkpoint, umask):
    import os

    from prunelab.io.formats import export_model, get_format

    old = os.umask(umask)
    try:
        model, card = load_checkpoint(digits_checkpoint)
        save_checkpoint(tmp_path / "ck", model, card)
        export_model(model, card, get_format("sparse", False, None), tmp_path / "m.sparse", (1, 8, 8))
    finally:
        os.umask(old)
    ck = tmp_path / "ck"
    for path in (ck / "model.safetensors", ck / "model.json", tmp_path / "m.sparse"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert not list(tmp_path.rglob("*.tmp"))
