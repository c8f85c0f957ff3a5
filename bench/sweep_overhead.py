"""Sweep wall time against its floor (plain dense evaluations) and the classic per-layer prune loop.

Usage:
    python bench/sweep_overhead.py [--model resnet56] [--levels 0:1:0.05] [--rounds 3]

The classic loop is what the classic study ran: for every level, rebuild the model from the
checkpoint, call torch.nn.utils.prune.l1_unstructured on every conv/linear (classifier included),
evaluate with the pruning hooks in place. prunelab runs the same points with --prune-classifier
(layerwise method, same masks), so both loops must also agree on every top-1 count: checked here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from prunelab.data import load_dataset, normalize
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.spec import parse_levels
from prunelab.experiment.sweep import Sweep
from prunelab.io.checkpoint import load_checkpoint
from prunelab.measure import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHECKPOINTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56", choices=sorted(CHECKPOINTS))
    parser.add_argument("--levels", default="0:1:0.05")
    parser.add_argument("--data", default=str(SHARED / "data" / "cifar10" / "cifar10_subset.npz"))
    parser.add_argument("--rounds", type=int, default=3, help="sweeps of every level; the median is reported")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    ckpt = SHARED / "models" / "cifar10" / CHECKPOINTS[args.model]
    if not ckpt.exists() or not Path(args.data).exists():
        print(f"skipped: {ckpt} or {args.data} is absent", file=sys.stderr)
        return 0
    levels = parse_levels(args.levels)
    torch.manual_seed(0)

    model, meta = load_checkpoint(ckpt, args.model)
    test = load_dataset(args.data).test
    x, y = normalize(test.x, meta.mean, meta.std), test.y
    evaluate(model, x, y)  # warm-up

    def classic_point(level: float) -> int:
        """The classic loop: rebuild, prune every layer through torch.nn.utils.prune, evaluate."""
        net, _ = load_checkpoint(ckpt, args.model)
        for module in net.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                prune.l1_unstructured(module, "weight", amount=level)
        return evaluate(net, x, y).correct

    # The three loops run interleaved, level by level, each level in a rotated order, so that
    # whatever else the machine is doing weighs on all three alike; `--rounds` sweeps of the whole
    # grid, and the median round is reported. Floor = a plain evaluation of the dense model.
    rounds, ours, classic = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SweepConfig(checkpoint=str(ckpt), model=args.model, data=args.data, methods=("layerwise",),
                          levels=levels, prune_classifier=True, device="cpu")
        sweep = Sweep(cfg, tmp)  # setup (loading, hashing, counting MACs once) is excluded, as for the floor

        def floor(level):
            evaluate(model, x, y)

        def prunelab(level):
            point = sweep.point("layerwise", level, 0)
            sweep.store.add(point)
            ours[level] = point.correct

        def classic_loop(level):
            classic[level] = classic_point(level)

        loops = {"floor": floor, "prunelab": prunelab, "classic": classic_loop}
        for _ in range(args.rounds):
            times = dict.fromkeys(loops, 0.0)
            for i, level in enumerate(levels):
                names = list(loops)[i % 3:] + list(loops)[:i % 3]
                for name in names:
                    start = time.perf_counter()
                    loops[name](level)
                    times[name] += time.perf_counter() - start
            rounds.append(times)
        sweep.store.close()
    median = sorted(rounds, key=lambda t: t["prunelab"] / t["floor"])[len(rounds) // 2]
    floor_s, prunelab_s, classic_s = median["floor"], median["prunelab"], median["classic"]

    figures = {
        "model": args.model, "levels": len(levels), "test_images": len(y), "rounds": args.rounds,
        "threads": torch.get_num_threads(), "floor_s": round(floor_s, 2),
        "prunelab_s": round(prunelab_s, 2), "classic_s": round(classic_s, 2),
        "prunelab_over_floor": round(prunelab_s / floor_s, 3),
        "classic_over_prunelab": round(classic_s / prunelab_s, 3),
        "every_round": [{k: round(v, 2) for k, v in t.items()} for t in rounds],
        "same_top1_counts_at_every_level": ours == classic,
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ours == classic else 1


if __name__ == "__main__":
    sys.exit(main())
