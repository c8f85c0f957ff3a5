"""Run folders written before the plug-in redesign (tests/fixtures/run-v0.tar.xz, by commit
f612190) still report, export and resume, with the numbers they stored."""

import sqlite3
import tarfile
from pathlib import Path

import pytest
from cli_helpers import run

from prunelab.data import load_dataset, normalize
from prunelab.experiment.store import Store
from prunelab.io.formats.sparse import load_sparse
from prunelab.io.formats.structured import load_structured
from prunelab.measure import evaluate

pytestmark = pytest.mark.slow  # end to end: run by .ci/run with -m slow

FIXTURE = Path(__file__).parent / "fixtures" / "run-v0.tar.xz"
METHODS = "layerwise,nm-2:4,global+iter,channels-layerwise+ft"
SWEEP = ("sweep", "model", "--data", "digits", "--methods", METHODS, "--epochs", "1", "--retrain", "rewind",
         "--lr", "0.02", "--no-report")


@pytest.fixture
def old(tmp_path, monkeypatch):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    monkeypatch.chdir(tmp_path)  # the sweep ran here: its checkpoint path is relative to this folder
    return tmp_path


def stored(folder: Path) -> dict:
    store = Store.open(folder)
    points = {p.key: p for p in store.points()}
    store.close()
    return points


def rows(folder: Path) -> dict:
    conn = sqlite3.connect(folder / "results.sqlite")
    out = {r[:3]: r[3:5] for r in conn.execute("SELECT * FROM points")}
    conn.close()
    return out


def test_an_old_run_reports_its_stored_answers(old, monkeypatch, capsys):
    code, stdout, err = run(monkeypatch, capsys, "report", "run", "--no-gif")
    assert code == 0, err
    assert "global+iter            60.0% of prunable weights can go" in stdout
    assert (old / "run" / "report" / "report.md").read_text().startswith("# Pruning report: smallcnn")


@pytest.mark.parametrize("method, level, fmt", [("layerwise", 0.6, "sparse"), ("nm-2:4", 0.5, "sparse"),
                                                ("global+iter", 0.9, "sparse"),
                                                ("channels-layerwise+ft", 0.6, "structured")])
def test_an_old_run_exports_the_networks_it_measured(old, monkeypatch, capsys, method, level, fmt):
    out = old / f"m.{fmt}"
    code, stdout, err = run(monkeypatch, capsys, "export", "run", "--method", method, "--level", level,
                            "--format", fmt, "--out", out)
    assert code == 0 and "bit-exact" in stdout, err
    model, ref = (load_sparse if fmt == "sparse" else load_structured)(out)
    test = load_dataset("digits").test
    ev = evaluate(model, normalize(test.x, ref.mean, ref.std), test.y)
    point = stored(old / "run")[(method, round(level * 1e6), 0)]
    assert ev.correct == point.correct  # the same network, to the image


def test_an_old_run_resumes_computing_only_what_is_missing(old, monkeypatch, capsys):
    before = rows(old / "run")
    code, _, err = run(monkeypatch, capsys, *SWEEP, "--levels", "0.6,0.8,0.9", "--out", "run")
    assert code == 0, err
    after = rows(old / "run")
    assert {k: v for k, v in after.items() if k in before} == before  # nothing stored was touched
    added = sorted(set(after) - set(before))
    assert [(m, lv) for m, lv, _ in added] == [("channels-layerwise+ft", 800000), ("global+iter", 800000),
                                               ("layerwise", 800000)]
    # The chain went on from its stored 60% state: a new chain 60% -> 80% computed by this code
    # ends at the same network, to the image (and so this code retrains as the old code did).
    code, _, err = run(monkeypatch, capsys, *SWEEP, "--levels", "0.6,0.8", "--out", "fresh")
    assert code == 0, err
    fresh = rows(old / "fresh")
    for level in (600000, 800000):
        assert fresh[("global+iter", level, 0)][1] == after[("global+iter", level, 0)][1]  # per-image hits
