"""At home: turn what the GPU study brought back into a run folder that prunelab reads.

    python bench/gpu/reassemble.py FILES_AT --out runs/r50-study [--no-gif]

FILES_AT is the folder the device tool put $OUT's files in. Afterwards runs/r50-study/model is
the sharded checkpoint (a checkpoint for `prunelab sweep`, `export --checkpoint`), and every
runs/r50-study/runs/<name> is a run folder whose report is written here and which `prunelab
report`, `retime` and `export` read (its checkpoint is found relative to it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def reassemble(files: Path, out: Path, gif: bool = True) -> dict:
    """Copy the shards, unpack the stores and logs, check the checkpoint loads, write every run's
    report; returns the study's record with each run's answers and report path."""
    from prunelab.io.checkpoint import load_checkpoint
    from prunelab.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "model").mkdir(exist_ok=True)
    for shard in sorted((files / "model").glob("model-*-of-*.safetensors")):
        shutil.copyfile(shard, out / "model" / shard.name)
    with tarfile.open(files / "study.tar.gz") as tar:
        tar.extractall(out, filter="data")  # plain files only, nothing outside `out`; model/ gets
        # the shards' index and model.json
    load_checkpoint(out / "model")  # every shard there and whole (sha256 against the index)
    record = json.loads((out / "study.json").read_text())
    record["reports"] = {}
    for run in sorted((out / "runs").iterdir()):
        if (run / "results.sqlite").exists():
            try:
                rep = write_report(run, gif=gif)
            except Exception as exc:  # noqa: BLE001 - a run with no pruned point yet has no report
                record["reports"][run.name] = f"no report: {exc}"
                continue
            record["reports"][run.name] = str(rep.files["markdown"])
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-gif", action="store_true")
    args = parser.parse_args()
    from prunelab.errors import PrunelabError

    try:
        record = reassemble(args.files, args.out, gif=not args.no_gif)
    except (PrunelabError, OSError, tarfile.TarError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record.get(k) for k in ("environment", "bench", "train", "stages", "answers",
                                                  "reports", "error", "exit_code")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
