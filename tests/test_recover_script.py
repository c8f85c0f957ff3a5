"""bench/cpu/recover_resnet50.sh, issue 41's one command, runs every stage end to end on a small
network and small files: the retraining sized to its budget, the same epochs for both levels, the
quantized points, the exported file scored outside the sweep; run again, it computes nothing new."""

import re

import pytest
from test_study_script import run_script, small_inputs

from prunelab.experiment.store import Store

pytestmark = pytest.mark.slow  # retraining in subprocesses: about a minute


def run_recovery(tmp_path):
    return run_script(tmp_path, "recover_resnet50.sh", {"OUT": str(tmp_path / "rec"), "BUDGET": "10m",
                                                         "MOST_EPOCHS": "2", "SWEEP_ARGS": "--bn-batches 2"})


def test_the_recovery_script_runs_every_stage_and_resumes(tmp_path):
    small_inputs(tmp_path, 256, 256)
    out = run_recovery(tmp_path)
    store = Store.open(tmp_path / "rec" / "gradual")
    points = {(p.method, p.target_sparsity): p.correct for p in store.points()}
    recipes = store.recipes()
    store.close()
    both = ("global+gradual", "global+gradual@kmeans4+bn", "global+gradual@kmeans3+bn")
    assert set(points) == {("dense", 0.0), *((m, lv) for m in both for lv in (0.95, 0.97)),
                           ("global+gradual@kmeans4+ft", 0.97)}
    assert recipes["global+gradual"]["recovery"]["epochs"] == 2  # the most, within a 10-minute budget
    scored = re.findall(r"\(quantized, resnet20\): (\d+) of (\d+) test images", out)
    assert [int(n) for _, n in scored] == [60, 80]  # the exact, then the JPEG test split
    assert int(scored[0][0]) == points[("global+gradual@kmeans4+ft", 0.97)]  # the file is the point
    again = run_recovery(tmp_path)
    store = Store.open(tmp_path / "rec" / "gradual")
    assert {(p.method, p.target_sparsity): p.correct for p in store.points()} == points
    store.close()
    assert re.findall(r"\(quantized, resnet20\): (\d+) of (\d+) test images", again) == scored
