"""A training run's progress so far, read from its saved state (safe to run beside the training):
one markdown row per finished epoch, and the clock.

    python bench/cpu/progress.py runs/resnet50-cpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder (holding train_state.pt)")
    args = parser.parse_args()
    path = args.run / "train_state.pt"
    if not path.is_file():
        print(f"error: {path} does not exist; pass the folder a 'prunelab train' run saves its state in",
              file=sys.stderr)
        return 2
    state = torch.load(path, weights_only=True, map_location="cpu")
    epochs = state["config"]["epochs"]
    print(f"| epoch (of {epochs}) | image size | train top-1 (augmented) | test top-1 (full size) "
          f"| hours (wall) |")
    print("|---:|---:|---:|---:|---:|")
    for e in state["history"]:  # states saved before the clock entered the last record lack its hours
        hours = f"{e['seconds'] / 3600:.2f}" if "seconds" in e else "–"
        test = f"{e['test_top1']:.2f}%" if "test_top1" in e else "–"
        print(f"| {e['epoch']} | {e['size']} | {e['train_top1']:.2f}% | {test} | {hours} |")
    clock = state.get("clock", {})
    print(f"\nclock: {clock.get('seconds', 0) / 3600:.2f} h wall, {clock.get('cpu_seconds', 0) / 3600:.2f} h "
          f"of CPU time (both cores), through epoch {state['epoch']}"
          + (f" and {state['partial']['step']} steps of the next" if state.get("partial") else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
