"""bench/levels_table.py: the per-level table RESULTS shows, read from a run's results.csv."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "levels_table.py"
HEADER = "method,target_sparsity,seed,correct,n_images\n"


def write_csv(run: Path, rows: list[str]) -> None:
    (run / "report").mkdir(parents=True)
    (run / "report" / "results.csv").write_text(HEADER + "".join(r + "\n" for r in rows))


def show(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_one_column_per_method_seeds_as_mean_and_spread(tmp_path):
    write_csv(tmp_path, ["dense,0.0,0,90,100", "global,0.5,0,80,100", "global,0.875,0,70,100",
                         "random,0.5,0,10,100", "random,0.5,1,20,100", "random,0.5,2,30,100"])
    shown = show(str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "| target sparsity | `global` | `random` |"
    assert lines[2] == "| 50% | 80.00 (80) | 20.00 ± 10.00 |"
    assert lines[3] == "| 87.5% | 70.00 (70) | – |"


def test_a_method_the_run_lacks_is_one_line(tmp_path):
    write_csv(tmp_path, ["dense,0.0,0,90,100", "global,0.5,0,80,100"])
    shown = show(str(tmp_path), "--methods", "global,lamp")
    assert shown.returncode == 2 and "has no points of lamp" in shown.stderr
    assert "Traceback" not in shown.stderr
