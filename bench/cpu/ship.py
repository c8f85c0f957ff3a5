"""Ship a trained network into the project: fp16 safetensors shards (the Hugging Face layout every
prunelab command reads), and a model.json whose accuracies are measured on exactly those shards.

    python bench/cpu/ship.py runs/resnet50-cpu zoo/resnet50-cifar10 \
        --test ../shared/data/cifar10/cifar10_subset.npz \
        --test ../shared/data/cifar10/cifar10_full_jpeg_q75.npz

The weights are stored in float16 (half the bytes; the checkpoint loads them back into the float32
network), so every figure is measured after that rounding: the shards are written, read back as
any user reads them, and evaluated in float32 on each --test file's test split. The card keeps the
training record (recipe, epochs, time, commit) and gains `training.shipped` with the counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from prunelab.data import load_dataset
from prunelab.data.source import TensorSource
from prunelab.errors import PrunelabError
from prunelab.io.checkpoint import load_checkpoint, save_checkpoint
from prunelab.measure import evaluate_batches

SHARD_BYTES = 20 * 2**20  # well under GitHub's 50 MB warning and 100 MB limit


def measure(folder: Path, tests: list[str], batch_size: int = 250) -> dict[str, dict]:
    """Correct and total on each test file's test split, of the network the folder's shards hold."""
    model, card = load_checkpoint(folder)
    out = {}
    for spec in tests:
        data = load_dataset(spec)
        source = TensorSource(data.test, card.mean, card.std, spec)
        ev = evaluate_batches(model, source.batches(batch_size, torch.device("cpu")))
        out[Path(spec).name] = {"correct": ev.correct, "images": ev.n, "top1": round(ev.top1, 4)}
    return out


def ship(run: Path, dest: Path, tests: list[str]) -> dict[str, dict]:
    model, card = load_checkpoint(run)
    save_checkpoint(dest, model, card, max_shard_bytes=SHARD_BYTES, dtype=torch.float16)
    counts = measure(dest, tests)
    first = counts[Path(tests[0]).name]
    training = {**card.training, "trained_in": str(run), "shipped": counts}
    shipped = dataclasses.replace(card, training=training, top1=first["top1"], data=tests[0])
    save_checkpoint(dest, model, shipped, max_shard_bytes=SHARD_BYTES, dtype=torch.float16)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the trained checkpoint folder (prunelab train --out)")
    parser.add_argument("dest", type=Path, help="the folder to ship, e.g. zoo/resnet50-cifar10")
    parser.add_argument("--test", action="append", required=True,
                        help="a dataset whose test split is measured (repeatable; the first gives the "
                             "card's top-1)")
    args = parser.parse_args()
    try:
        counts = ship(args.run, args.dest, args.test)
    except PrunelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, c in counts.items():
        print(f"{name}: {c['correct']:,} of {c['images']:,} ({c['top1']:.2f}%)")
    print(f"shipped to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
