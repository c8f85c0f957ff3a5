"""Nothing a command reads or owns is ever its destination, and every input is checked before anything
is written (issue 39): a refused command leaves every stored file byte-identical."""

import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, run

from prunelab import api
from prunelab.experiment.config import SweepConfig


def snapshot(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, digits_checkpoint):
    """A finished sweep of the digits network (dense + global at 50%) beside a copy of its checkpoint."""
    root = tmp_path_factory.mktemp("swept")
    checkpoint = shutil.copytree(digits_checkpoint, root / "ck")
    cfg = SweepConfig(checkpoint=str(checkpoint), methods=("global",), levels=(0.5,), device="cpu")
    api.sweep(cfg, root / "run", budget=1.0)
    return root


@pytest.mark.parametrize("args,needles", [
    (["export", "{run}", "--method", "global", "--level", "0.5", "--format", "sparse", "--out",
      "{run}/results.sqlite"], ["own 'results.sqlite'"]),
    (["export", "{run}", "--method", "global", "--level", "0.5", "--format", "sparse", "--out",
      "{run}/config.json"], ["own 'config.json'"]),
    (["export", "--checkpoint", "{ck}", "--method", "global", "--level", "0.5", "--format", "sparse",
      "--out", "{ck}/model.safetensors"], ["inside the checkpoint folder"]),
    (["export", "--checkpoint", "{ck}/model.safetensors", "--method", "global", "--level", "0.5",
      "--format", "sparse", "--out", "{ck}/model.safetensors"], ["{ck}/model.safetensors", "checkpoint"]),
    (["export", "{run}", "--method", "global", "--level", "0.5", "--format", "sparse", "--out",
      "{run}/report/x.sparse"], ["own 'report'"]),
    (["latency-table", "{ck}", "--runtime", "torch", "--out", "{run}/results.sqlite"],
     ["own 'results.sqlite'"]),
    (["latency-table", "{ck}", "--runtime", "torch", "--out", "{ck}/model.json"], ["lies inside", "reads"]),
    (["sweep", "{ck}", "--levels", "0.5", "--methods", "global", "--out", "{ck}"], ["reads"]),
    (["sweep", "{ck}", "--levels", "0.5", "--methods", "global", "--out", "{run}/models"], ["own 'models'"]),
    (["sensitivity", "{ck}", "--levels", "0.5", "--out", "{run}/report"], ["own 'report'"]),
    (["train", "--model", "smallcnn", "--epochs", "1", "--out", "{run}"], ["is a run folder"]),
    (["retime", "{run}", "--budget", "nan"], ["budget", "finite"]),
])
def test_a_command_refuses_to_write_onto_what_it_reads_or_a_run_owns(monkeypatch, capsys, swept, args,
                                                                      needles):
    before = snapshot(swept)
    paths = {"run": swept / "run", "ck": swept / "ck"}
    code, _, err = run(monkeypatch, capsys, *(a.format(**paths) for a in args))
    assert_user_error(code, err, *(n.format(**paths) for n in needles))
    assert snapshot(swept) == before


def test_an_out_beside_a_runs_own_files_is_still_written(monkeypatch, capsys, swept, tmp_path):
    run_copy = shutil.copytree(swept / "run", tmp_path / "run")
    code, _, err = run(monkeypatch, capsys, "export", run_copy, "--method", "global", "--level", "0.5",
                       "--format", "sparse", "--out", run_copy / "global-50.sparse")
    assert code == 0, err
    assert (run_copy / "global-50.sparse").stat().st_size > 0


def test_training_over_a_trained_model_without_its_state_needs_overwrite(monkeypatch, capsys, tmp_path,
                                                                          digits_checkpoint):
    trained = shutil.copytree(digits_checkpoint, tmp_path / "m")  # a model, no train_state.pt
    before = snapshot(trained)
    args = ["train", "--model", "smallcnn", "--data", "digits", "--epochs", "1", "--out", trained]
    code, _, err = run(monkeypatch, capsys, *args)
    assert_user_error(code, err, "already holds a trained smallcnn", "model.safetensors", "--overwrite")
    assert snapshot(trained) == before


@pytest.mark.slow  # one training epoch
def test_overwrite_replaces_a_trained_model_left_without_its_state(monkeypatch, capsys, tmp_path,
                                                                   digits_checkpoint):
    trained = shutil.copytree(digits_checkpoint, tmp_path / "m")
    before = (trained / "model.safetensors").read_bytes()
    code, _, err = run(monkeypatch, capsys, "train", "--model", "smallcnn", "--data", "digits", "--epochs",
                       "1", "--out", trained, "--overwrite")
    assert code == 0, err
    assert (trained / "model.safetensors").read_bytes() != before
