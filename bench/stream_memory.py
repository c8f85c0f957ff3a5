"""Peak memory of a sweep over an image folder against the folder's decoded size: the images are
streamed batch by batch, never held whole.

    python bench/stream_memory.py [--images 3000] [--size 224] [--out /tmp/stream-bench]

It writes `--images` random JPEGs of `--size` px into an ImageFolder layout (10 classes), saves a
small torchvision-style network's weights, then runs `prunelab sweep` (dense and one global level)
in a child process and reads that process's peak resident memory (ru_maxrss). The decoded folder
is images x 3 x size x size bytes as uint8, four times that as the float32 tensors a model takes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_folder(root: Path, images: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "test" / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", type=Path, default=Path("/tmp/stream-bench"))
    args = parser.parse_args()
    folder, ckpt = args.out / "images", args.out / "net.pt"
    if not folder.exists():
        write_folder(folder, args.images, args.size)
    torch.manual_seed(0)
    import torchvision

    torch.save(torchvision.models.squeezenet1_1(num_classes=10).state_dict(), ckpt)
    cmd = ["prunelab", "sweep", str(ckpt), "--model", "torchvision.squeezenet1_1", "--data", str(folder),
           "--methods", "global", "--levels", "0.5", "--batch-size", "100", "--device", "cpu",
           "--out", str(args.out / "run")]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: kilobytes
    decoded = args.images * 3 * args.size ** 2
    figures = {"images": args.images, "size": args.size, "decoded_uint8_bytes": decoded,
               "decoded_float32_bytes": 4 * decoded, "peak_rss_bytes": peak, "seconds": round(seconds, 1)}
    print(json.dumps(figures, indent=1))
    print(f"peak RSS {peak / 2**20:,.0f} MiB against {decoded / 2**20:,.0f} MiB of decoded uint8 images "
          f"({4 * decoded / 2**20:,.0f} MiB as float32)", file=sys.stderr)


if __name__ == "__main__":
    main()
