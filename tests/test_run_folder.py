"""A run folder never gives a confident wrong answer (issue 18): one kind of run per folder, a full
disk or a damaged file is one line, and what was stored before stays stored and readable."""

import errno
import json
import os
import re
import sqlite3

import pytest
from cli_helpers import assert_user_error, run

from prunelab.experiment.store import KIND, STORE_FILE, Store

BAR = re.compile(r"^\w+: +\d+%\|")  # a progress bar's line, left in a captured stderr by a run that failed


def assert_one_line(code, err, *needles):
    """`assert_user_error` for a failure mid-run: the progress bar's lines aside."""
    lines = [line for part in err.splitlines() for line in part.split("\r") if not BAR.match(line)]
    assert_user_error(code, "\n".join(lines), *needles)


def _sweep(monkeypatch, capsys, ckpt, out, *args):
    return run(monkeypatch, capsys, "sweep", ckpt, "--no-report", *args, "--out", out)


def _sensitivity(monkeypatch, capsys, ckpt, out):
    return run(monkeypatch, capsys, "sensitivity", ckpt, "--levels", "0.5", "--out", out)


def _layerwise(monkeypatch, capsys, ckpt, out, levels="0.5"):
    return _sweep(monkeypatch, capsys, ckpt, out, "--methods", "layerwise", "--levels", levels)


def _stored(out):
    store = Store.open(out)
    try:
        return sorted(p.key for p in store.points())
    finally:
        store.close()


def _no_temporaries(out):
    assert not [p for p in out.rglob("*") if "tmp" in p.name], list(out.rglob("*"))


def test_a_folder_holds_one_kind_of_run(monkeypatch, capsys, tmp_path, digits_checkpoint):
    swept, profiled = tmp_path / "sweep", tmp_path / "sens"
    code, _, err = _layerwise(monkeypatch, capsys, digits_checkpoint, swept)
    assert code == 0, err
    code, _, err = _sensitivity(monkeypatch, capsys, digits_checkpoint, profiled)
    assert code == 0, err
    before = {out: (_stored(out), (out / "config.json").read_bytes()) for out in (swept, profiled)}

    code, _, err = _sensitivity(monkeypatch, capsys, digits_checkpoint, swept)
    assert_user_error(code, err, f"run folder {swept} holds a sweep run", "--out")
    code, _, err = _layerwise(monkeypatch, capsys, digits_checkpoint, profiled)
    assert_user_error(code, err, f"run folder {profiled} holds a sensitivity run", "--out")

    # a folder written before the kind was recorded: its points tell
    for out in (swept, profiled):
        with sqlite3.connect(out / STORE_FILE) as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (KIND,))
    code, _, err = _sensitivity(monkeypatch, capsys, digits_checkpoint, swept)
    assert_user_error(code, err, "holds a sweep run")
    code, _, err = _layerwise(monkeypatch, capsys, digits_checkpoint, profiled)
    assert_user_error(code, err, "holds a sensitivity run")
    assert {out: (_stored(out), (out / "config.json").read_bytes()) for out in (swept, profiled)} == before


def _fsync_fails_on(monkeypatch, suffix: str, at: int):
    """Make the `at`-th fsync of a file named *`suffix` fail with ENOSPC, after its bytes were written
    (a disk that fills up mid-write); returns the list of paths it was called for."""
    real, seen = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith(suffix):
            seen.append(name)
            if len(seen) == at:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_a_full_disk_is_one_line_and_keeps_what_was_stored(monkeypatch, capsys, tmp_path, digits_checkpoint):
    # retraining: the second point's training state cannot be written
    out = tmp_path / "ft"
    with monkeypatch.context() as m:
        _fsync_fails_on(m, "train_state.pt.tmp", at=2)
        code, _, err = _sweep(m, capsys, digits_checkpoint, out, "--methods", "global+ft",
                              "--levels", "0.5,0.9", "--epochs", "1")
    state = out / "partial" / "global_ft-seed0" / "0900000" / "train_state.pt"
    assert_one_line(code, err, f"cannot write {state}", "No space left on device", "free space",
                    "run the same command again")
    _no_temporaries(out)
    assert _stored(out) == [("dense", 0, 0), ("global+ft", 500000, 0)]
    code, stdout, err = run(monkeypatch, capsys, "report", out, "--no-gif")
    assert code == 0 and "global+ft" in stdout, err

    # one-shot: the store itself fills up (SQLite's own 'database or disk is full')
    out, added = tmp_path / "oneshot", []
    real_add = Store.add

    def add(store, point):
        if len(added) == 2:  # the disk is full from here: the store may fill its pages, not add one
            conn = store._conn
            conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        real_add(store, point)
        added.append(point.key)

    with monkeypatch.context() as m:
        m.setattr(Store, "add", add)
        code, _, err = _layerwise(m, capsys, digits_checkpoint, out, "0.05:1:0.05")
    assert_one_line(code, err, f"cannot write {out / STORE_FILE}", "no space left on device", "free space",
                      "results stored so far are kept")
    _no_temporaries(out)
    assert _stored(out) == sorted(added) and 2 <= len(added) < 20
    code, stdout, err = run(monkeypatch, capsys, "report", out, "--no-gif")
    assert code == 0 and "layerwise" in stdout, err

    # the config copy on a resume: a read-only disk; the old one is left whole
    config = (out / "config.json").read_bytes()
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith("config.json"):
            raise OSError(errno.EROFS, "Read-only file system", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        code, _, err = _layerwise(m, capsys, digits_checkpoint, out, "0.05:1:0.05")
    assert_one_line(code, err, f"cannot write {out / 'config.json'}", "Read-only file system", "writable")
    _no_temporaries(out)
    assert (out / "config.json").read_bytes() == config and _stored(out) == sorted(added)

    # an OSError no writer named first is one line too (the CLI's net)
    def report_fails(run, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(run / "report" / "report.md"))

    monkeypatch.setattr("prunelab.report.write_report", report_fails)
    code, _, err = run(monkeypatch, capsys, "report", out, "--no-gif")
    assert_user_error(code, err, f"cannot write {out / 'report' / 'report.md'}", "free space")


def _damage(out, sql, *args):
    with sqlite3.connect(out / STORE_FILE) as conn:
        conn.execute(sql, args)


@pytest.mark.parametrize("command", ["report", "retime"])
def test_a_damaged_store_is_one_line_naming_the_row(monkeypatch, capsys, tmp_path, digits_checkpoint,
                                                    command):
    out = tmp_path / "run"
    code, _, err = _layerwise(monkeypatch, capsys, digits_checkpoint, out)
    assert code == 0, err
    where = "WHERE method = 'layerwise' AND level_ppm = 500000 AND seed = 0"
    with sqlite3.connect(out / STORE_FILE) as conn:
        text, hits = conn.execute(f"SELECT row, hits FROM points {where}").fetchone()
    row = json.loads(text)
    for damage, needle in [({**row, "top1": "abc"}, "'top1' is \"abc\", not a number"),
                           ({**row, "loss": None}, "'loss' is null, not a number"),
                           ({k: v for k, v in row.items() if k != "correct"}, "'correct' is missing"),
                           ("{\"method\": \"layerwise\", ", "not valid JSON")]:
        _damage(out, f"UPDATE points SET row = ? {where}",
                damage if isinstance(damage, str) else json.dumps(damage))
        code, _, err = run(monkeypatch, capsys, command, out)
        assert_user_error(code, err, str(out / STORE_FILE), "layerwise at level 0.5, seed 0", needle,
                          "DELETE FROM")
    _damage(out, f"UPDATE points SET row = ?, hits = x'00' {where}", json.dumps(row))
    code, _, err = run(monkeypatch, capsys, command, out)
    assert_user_error(code, err, "layerwise at level 0.5, seed 0", "hits")
    _damage(out, f"UPDATE points SET hits = ? {where}", hits)
    _damage(out, "UPDATE meta SET value = '{' WHERE key = 'config'")
    code, _, err = run(monkeypatch, capsys, command, out)
    assert_user_error(code, err, str(out / STORE_FILE), "'config'", "not valid JSON")


def test_a_damaged_training_state_is_one_line_and_kept(monkeypatch, capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "run"
    state = out / "partial" / "global_ft-seed0" / "0500000" / "train_state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"PK\x03\x04 not a whole zip")
    args = ("--methods", "global+ft", "--levels", "0.5", "--epochs", "1")
    code, _, err = _sweep(monkeypatch, capsys, digits_checkpoint, out, *args)
    assert_one_line(code, err, str(state), "cannot be read as a training state", "delete it")
    assert state.read_bytes() == b"PK\x03\x04 not a whole zip"  # hours of training are never dropped unasked

    state.unlink()
    (out / "config.json").write_text("{ not json")  # a copy for people: the store's is what is read back
    code, _, err = _sweep(monkeypatch, capsys, digits_checkpoint, out, *args)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["kind"] == "sweep"
    assert [k[0] for k in _stored(out)] == ["dense", "global+ft"]


def test_a_store_a_full_disk_cut_short_reads_as_no_results(monkeypatch, capsys, tmp_path):
    (tmp_path / STORE_FILE).write_bytes(b"")  # left by an older prunelab stopped before its first write
    code, _, err = run(monkeypatch, capsys, "report", tmp_path)
    assert_user_error(code, err, "holds no sweep results")
    (tmp_path / STORE_FILE).write_bytes(b"junk" * 100)
    code, _, err = run(monkeypatch, capsys, "report", tmp_path)
    assert_user_error(code, err, "is not a prunelab results store")


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # the thread's traceback
def test_a_full_disk_under_tensorboard_is_one_line(monkeypatch, capsys, tmp_path, digits_checkpoint):
    from tensorboard.summary.writer.record_writer import RecordWriter

    real, writes = RecordWriter.write, []

    def full_after_the_first_point(self, data):  # in TensorBoard's writer thread
        writes.append(data)
        if len(writes) > 2:  # the file's header, then the dense point's first scalar
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "tb" / "events"))
        real(self, data)

    monkeypatch.setattr(RecordWriter, "write", full_after_the_first_point)
    code, _, err = _layerwise(monkeypatch, capsys, digits_checkpoint, tmp_path / "run", "0.3,0.5")
    assert_one_line(code, err, "No space left on device", "free space")  # not the thread's traceback
    assert _stored(tmp_path / "run")  # the points stored before it stay
