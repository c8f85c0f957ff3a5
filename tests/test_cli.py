"""The command line: one-line errors with exit code 2 for user mistakes, nothing stored is lost."""


import pytest
import torch
from cli_helpers import assert_user_error, run

from prunelab.experiment.store import Store
from prunelab.models import create_model


@pytest.fixture
def th_file(tmp_path):
    path = tmp_path / "r20.th"
    torch.save({"state_dict": create_model("resnet20").state_dict()}, path)
    return path


def test_unknown_names_suggest(monkeypatch, capsys, tmp_path, digits_checkpoint):
    code, _, err = run(monkeypatch, capsys, "train", "--model", "resnet21", "--out", tmp_path)
    assert_user_error(code, err, "unknown model 'resnet21'", "did you mean")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "layerwize",
                       "--out", tmp_path / "a")
    assert_user_error(code, err, "unknown method 'layerwize'", "layerwise")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", "digitz",
                       "--out", tmp_path / "b")
    assert_user_error(code, err, "digits")


def test_bad_levels(monkeypatch, capsys, tmp_path, digits_checkpoint):
    for levels in ("0,1.2", "-0.1:1:0.1", "x"):
        code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--levels", levels,
                           "--out", tmp_path)
        assert_user_error(code, err, "level")


def test_missing_and_corrupt_data(monkeypatch, capsys, tmp_path, digits_checkpoint):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", tmp_path / "no.npz",
                       "--out", tmp_path / "r")
    assert_user_error(code, err, "no.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00garbage")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", junk,
                       "--out", tmp_path / "r")
    assert_user_error(code, err, "junk.npz")
    code, _, err = run(monkeypatch, capsys, "train", "--model", "resnet20", "--data", "cifar10",
                       "--data-root", tmp_path / "none", "--out", tmp_path / "t")
    assert_user_error(code, err, str(tmp_path / "none"), "--download")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--train-data", tmp_path / "no.npz",
                       "--methods", "global+ft", "--out", tmp_path / "r")
    assert_user_error(code, err, "no.npz")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "global+ft",
                       "--distill", "2", "--out", tmp_path / "r")
    assert_user_error(code, err, "distillation", "[0, 1]")


def test_checkpoint_that_does_not_fit(monkeypatch, capsys, tmp_path, th_file):
    code, _, err = run(monkeypatch, capsys, "sweep", th_file, "--model", "resnet32",
                       "--out", tmp_path / "r")
    assert_user_error(code, err, "does not fit model 'resnet32'")
    code, _, err = run(monkeypatch, capsys, "sweep", th_file, "--out", tmp_path / "r")
    assert_user_error(code, err, "--model")
    code, _, err = run(monkeypatch, capsys, "sweep", th_file, "--model", "resnet20", "--data", "digits",
                       "--out", tmp_path / "r")
    assert_user_error(code, err, "channel")


def test_unwritable_run_folder(monkeypatch, capsys, tmp_path, digits_checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--out", blocker / "run")
    assert_user_error(code, err, "cannot write the run folder", "--out")


def test_other_configuration_refused_and_nothing_lost(monkeypatch, capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "run"
    code, stdout, _ = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--levels", "0,0.5",
                          "--methods", "layerwise", "--out", out, "--no-report")
    assert code == 0 and "layerwise" in stdout
    store = Store.open(out)
    before = [p.key for p in store.points()]
    store.close()
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--levels", "0,0.5",
                       "--methods", "layerwise", "--prune-classifier", "--out", out)
    assert_user_error(code, err, "different configuration", "--out")
    store = Store.open(out)
    assert [p.key for p in store.points()] == before
    store.close()


def test_report_without_results(monkeypatch, capsys, tmp_path):
    code, _, err = run(monkeypatch, capsys, "report", tmp_path)
    assert_user_error(code, err, "no sweep results")


def test_usage_errors_exit_2(monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "sweep")
    assert code == 2 and "Missing argument" in err


def test_sweep_writes_report_and_tensorboard(monkeypatch, capsys, tmp_path, digits_checkpoint):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    code, stdout, _ = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--levels", "0,0.5,0.9",
                          "--methods", "global,global+ft", "--epochs", "1", "--out", out)
    assert code == 0 and "report:" in stdout
    assert (out / "report" / "report.md").exists() and (out / "report" / "pruning.gif").exists()
    events = EventAccumulator(str(out / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert "sweep_top1/global/seed0" in tags
    assert [e.step for e in events.Scalars("sweep_top1/global/seed0")] == [0, 500, 900]
    assert any(t.startswith("retrain/global+ft/level0500/seed0/") for t in tags)
    assert events.Tags()["images"] == ["sweep/accuracy_vs_sparsity"]


def test_answer_line_gives_the_counted_share_where_it_reads_differently():
    from prunelab.cli import answer_line
    from prunelab.experiment.analysis import Answer

    def line(target, counted):
        return answer_line(Answer("m", target, counted, 92.2, 92.7, 1.0, 0.0, target, 2000))

    assert "60.0% of prunable weights can go (95% CI 0-60%)" in line(0.6, 0.60004)
    # a channel level reached only as closely as whole channels allow: both shares are shown
    assert "70.0% of prunable weights can go (67.7% counted; 95% CI 0-70%)" in line(0.7, 0.677)


def test_training_twice_with_one_seed_gives_the_same_weights(monkeypatch, capsys, tmp_path):
    from safetensors.torch import load_file

    weights = []
    for name in ("a", "b"):
        torch.manual_seed(len(weights))  # whatever the global generator holds, the seed decides
        code, _, err = run(monkeypatch, capsys, "train", "--model", "smallcnn", "--data", "digits",
                           "--epochs", "1", "--out", tmp_path / name)
        assert code == 0, err
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("args,needles", [
    (["--budget", "nan"], ["budget", "finite"]),
    (["--budget", "-1"], ["budget", ">= 0"]),
    (["--seeds", ",,,"], ["no seeds given"]),
    (["--seeds", str(2**64)], ["seed", "2^63"]),
    (["--bn-batches", "0"], ["--bn-batches", ">= 1"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--layer-cap", "0"], ["--layer-cap", "(0, 1]"]),
    (["--layer-cap", "1.5"], ["--layer-cap", "(0, 1]"]),  # one wording per bound
])
def test_numbers_that_would_give_a_wrong_answer_are_refused_before_any_work(
        digits_checkpoint, monkeypatch, capsys, tmp_path, args, needles):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--levels", "0.5", *args,
                       "--out", tmp_path / "run")
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_a_level_range_never_passes_its_stop():
    from prunelab.experiment.spec import parse_levels

    assert parse_levels("0:0.99:0.1")[-1] == 0.9
    assert parse_levels("0:1:0.05") == tuple(round(0.05 * i, 6) for i in range(21))


@pytest.mark.parametrize("args,needles", [
    (["--epochs", "0"], ["--epochs >= 1"]),
    (["--batch-size", "0"], ["batch size >= 1"]),
    (["--weight-decay", "-1"], ["weight decay >= 0"]),
    (["--momentum", "1.5"], ["momentum in [0, 1)"]),
])
def test_train_refuses_a_recipe_that_cannot_train_before_any_work(monkeypatch, capsys, tmp_path, args,
                                                                  needles):
    code, _, err = run(monkeypatch, capsys, "train", "--model", "smallcnn", *args, "--out", tmp_path / "m")
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_the_methods_listing_wraps_to_the_terminal_under_its_own_column(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(monkeypatch, capsys, "methods")
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    column = lines[1].index("lowest")  # 'global' row: where every description starts
    continued = [line for line in lines if line.startswith("   ") and line.strip()]
    assert continued and all(len(line) - len(line.lstrip()) == column for line in continued)


def test_train_refuses_an_out_folder_under_a_file(monkeypatch, capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    code, _, err = run(monkeypatch, capsys, "train", "--model", "smallcnn", "--epochs", "1",
                       "--out", tmp_path / "afile" / "m")
    assert_user_error(code, err, "afile is a file, not a folder")
