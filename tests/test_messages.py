"""Every user mistake is one line with the diagnosis that fits its cause and the options of the command
that failed (issue 39): no usage block, no advice to disable a safety check or to pass an option the
command does not have."""

import errno
import json
import shutil

import numpy as np
import pytest
from cli_helpers import assert_user_error, run

from prunelab import api
from prunelab.experiment.config import SweepConfig
from prunelab.io.checkpoint import INDEX_FILE, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("args,needles", [
    (["sweep", "{ck}", "--batch-size", "abc"], ["--batch-size", "abc"]),
    (["sweep", "{ck}", "--seeds", "x"], ["--seeds", "'x'"]),
    (["sweep", "{ck}", "--levels-typo", "0.5"], ["--levels-typo"]),
    (["export", "--checkpoint", "{ck}", "--method", "global", "--level", "half", "--format", "sparse"],
     ["--level", "half"]),
    (["latency-table", "{ck}", "--batch", "1.5"], ["--batch", "1.5"]),
])
def test_a_mistyped_option_is_one_line_naming_it(monkeypatch, capsys, tmp_path, digits_checkpoint, args,
                                                 needles):
    code, _, err = run(monkeypatch, capsys, *(a.format(ck=digits_checkpoint) for a in args), "--out",
                       tmp_path / "out")
    assert_user_error(code, err, *needles)
    assert "Usage:" not in err and "Try 'prunelab" not in err


@pytest.mark.parametrize("make,needles,never", [
    (lambda p: p.write_text("not a zip"), ["not a valid .npz file", "numpy.savez"], "allow_pickle"),
    (lambda p: np.savez(p, **{k: np.zeros((4, 3, 32, 32), np.uint8) for k in ("x_train", "x_test")},
                        y_train=np.zeros(4, np.int64), y_test=np.zeros(4, np.int64)),
     ["x_train", "channels first (N, C, H, W)", "transpose(0, 2, 3, 1)"], "32-channel"),
])
def test_a_data_file_gets_the_diagnosis_of_what_it_is(monkeypatch, capsys, tmp_path, digits_checkpoint, make,
                                                      needles, never):
    data = tmp_path / "data.npz"
    make(data)
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", data, "--levels", "0.5",
                       "--out", tmp_path / "run")
    assert_user_error(code, err, *needles)
    assert never not in err


def test_damp_inf_is_refused_up_front_as_the_damping(monkeypatch, capsys, tmp_path, digits_checkpoint):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "obs", "--levels", "0.5",
                       "--damp", "inf", "--out", tmp_path / "run")
    assert_user_error(code, err, "finite --damp", "inf")
    assert "--calibration" not in err and not (tmp_path / "run" / "results.sqlite").exists()


def test_report_on_a_checkpoint_folder_never_advises_sweeping_into_it(monkeypatch, capsys, digits_checkpoint):
    code, _, err = run(monkeypatch, capsys, "report", digits_checkpoint)
    assert_user_error(code, err, "is a checkpoint folder", "--out RUN")
    assert f"--out {digits_checkpoint}'" not in err


@pytest.fixture(scope="module")
def swept(tmp_path_factory, digits_checkpoint):
    run_folder = tmp_path_factory.mktemp("swept") / "run"
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), methods=("global",), levels=(0.5,), device="cpu")
    api.sweep(cfg, run_folder, budget=1.0)
    return run_folder


@pytest.mark.parametrize("command", ["report", "retime"])
def test_a_read_only_run_is_not_told_to_pass_an_option_its_command_lacks(monkeypatch, capsys, swept, command):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("prunelab.experiment.lock.os.open", refuse)  # root writes anywhere: the OS's answer
    code, _, err = run(monkeypatch, capsys, command, swept)
    assert_user_error(code, err, "Permission denied", "writable")
    assert "--out" not in err


def test_a_checkpoint_whose_card_names_its_model_is_not_told_to_pass_model(monkeypatch, capsys, tmp_path,
                                                                           digits_checkpoint):
    bad = shutil.copytree(digits_checkpoint, tmp_path / "ck")
    card = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**card, "model": "resnet20"}))
    code, _, err = run(monkeypatch, capsys, "sweep", bad, "--levels", "0.5", "--out", tmp_path / "run")
    assert_user_error(code, err, "does not fit model 'resnet20'", "model.json names 'resnet20'")
    assert "--model" not in err


def test_a_shard_outside_the_folder_is_called_so_not_missing(monkeypatch, capsys, tmp_path,
                                                             digits_checkpoint):
    model, card = load_checkpoint(digits_checkpoint)
    save_checkpoint(tmp_path / "sh", model, card, max_shard_bytes=300_000)
    index = json.loads((tmp_path / "sh" / INDEX_FILE).read_text())
    first = next(iter(index["weight_map"].values()))
    shutil.copy(tmp_path / "sh" / first, tmp_path / first)  # it even exists there
    index["weight_map"] = {k: f"../{v}" if v == first else v for k, v in index["weight_map"].items()}
    (tmp_path / "sh" / INDEX_FILE).write_text(json.dumps(index))
    code, _, err = run(monkeypatch, capsys, "sweep", tmp_path / "sh", "--levels", "0.5", "--out",
                       tmp_path / "run")
    assert_user_error(code, err, f"../{first}", "outside the folder")
    assert "missing" not in err
