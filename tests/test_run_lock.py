"""One command at a time per run folder: a second process stops at once, computing nothing."""

import subprocess
import sys

import pytest

from prunelab.experiment.lock import run_lock


def _sweep(checkpoint, out, *args):
    return subprocess.run([sys.executable, "-m", "prunelab", "sweep", str(checkpoint), "--levels", "0.5",
                           *args, "--out", str(out)], capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # separate processes, each importing torch: ~12 s
def test_a_second_process_in_a_busy_run_folder_stops_with_one_line(tmp_path, digits_checkpoint):
    out = tmp_path / "run"
    with run_lock(out):  # this process is the first one, mid-sweep
        done = _sweep(digits_checkpoint, out)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "in use by another prunelab process" in lines[0], done.stderr
    assert not (out / "results.sqlite").exists()  # nothing computed, nothing created

    again = _sweep(digits_checkpoint, out, "--methods", "global")
    assert again.returncode == 0, again.stderr  # the lock went with its holder


@pytest.mark.slow  # separate processes, each importing torch: ~12 s
def test_a_report_waits_for_another_process_writing_it(tmp_path, digits_checkpoint):
    import time

    from prunelab.report import write_report

    out = tmp_path / "run"
    assert _sweep(digits_checkpoint, out, "--methods", "global", "--no-report").returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from prunelab.experiment.lock import report_lock\n"
                               f"with report_lock({str(out / 'report')!r}):\n"
                               "    print('held', flush=True); time.sleep(2)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        report = write_report(out, gif=False)
        assert time.monotonic() - start > 1  # it waited for the holder to let go
    finally:
        holder.wait(timeout=30)
    assert (report.folder / "report.md").exists()
