"""The examples run as the README says, offline."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_own_model_example_sweeps_prunes_and_exports(tmp_path):
    script = ROOT / "examples" / "own_model.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [line for line in done.stdout.splitlines() if "can go" in line]
    assert [line.split(":")[0].strip() for line in answers] == ["layerwise", "global", "obs-global"]
    assert (tmp_path / "run" / "smaller.onnx").stat().st_size > 0
    assert (tmp_path / "run" / "results.sqlite").exists()
