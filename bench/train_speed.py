"""Training images/s: prunelab's fit against a plain eager PyTorch loop, same model, weights and recipe.

Usage:
    python bench/train_speed.py [--device auto] [--model resnet20] [--steps 4] [--warmup 1] \
        [--compile] [--fp32]

The plain loop is what a typical user writes: a torch.utils.data.Dataset over the uint8 HWC arrays
that hands each image to torchvision.transforms.v2 as a PIL image (as torchvision.datasets.CIFAR10
does), a DataLoader (batch 128, shuffle), the model in its default memory format in fp32, SGD with
momentum 0.9 and weight decay 5e-4, and loss.item() after every step. prunelab is `fit` with the same
recipe (uint8 tensors on the device, augmentation there; channels_last; bf16 autocast where the device
computes bf16 natively: CUDA, or a CPU with AMX or AVX512-BF16; `--fp32` also times it without) and
evaluate_every=0, so no test evaluation is timed. Both loops run the same number of steps; images/s
counts the steps after the warm-up, from a timestamp taken after each step. The runs alternate, round
by round, and the medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from prunelab.data import ImageSet, load_dataset
from prunelab.models import create_model, model_info
from prunelab.training import TrainConfig, fit
from prunelab.training.fit import native_bf16

SHARED = Path(__file__).resolve().parents[2] / "shared"


class HWCImages(torch.utils.data.Dataset):
    """uint8 (N, H, W, C) images, each handed to `transform` as a PIL image, with its int label."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def baseline(model: nn.Module, x: np.ndarray, y: np.ndarray, mean, std, cfg: TrainConfig,
             device: torch.device, steps: int, workers: int) -> list[float]:
    """The plain eager loop for `steps` steps; returns perf_counter() after each step (seconds)."""
    transform = v2.Compose([
        v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std),
    ])
    loader = DataLoader(HWCImages(x, y, transform), batch_size=cfg.batch_size, shuffle=True,
                        num_workers=workers)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    stamps: list[float] = []
    while len(stamps) < steps:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # typical code logs the running loss every step
            stamps.append(time.perf_counter())
            if len(stamps) == steps:
                break
    return stamps


def prunelab_fit(model: nn.Module, data, mean, std, cfg: TrainConfig, device: torch.device) -> list[float]:
    """prunelab.training.fit without test evaluation; returns perf_counter() after each step (seconds)."""
    stamps: list[float] = []
    fit(model, data, mean, std, cfg, device, evaluate_every=0,
        on_step=lambda epoch, i, loss: stamps.append(time.perf_counter()))
    return stamps


def images_per_s(stamps: list[float], warmup: int, batch: int) -> float:
    """Images/s over the steps after the first `warmup` (every step is a full batch)."""
    timed = len(stamps) - warmup
    return timed * batch / (stamps[-1] - stamps[warmup - 1])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: resnet20 on CPU, resnet50 on CUDA")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them (>= 1)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", default="0,2", help="baseline DataLoader num_workers, comma-separated")
    parser.add_argument("--data", default=str(SHARED / "data" / "cifar10" / "cifar10_subset.npz"))
    parser.add_argument("--compile", action="store_true", help="also time prunelab with cfg.compile=True")
    parser.add_argument("--fp32", action="store_true", help="also time prunelab with cfg.amp=False")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if not Path(args.data).exists():
        print(f"skipped: {args.data} is absent", file=sys.stderr)
        return 0
    if args.warmup < 1 or args.steps < 1 or args.rounds < 1:
        parser.error("--warmup, --steps and --rounds must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    name = args.model or ("resnet50" if cuda else "resnet20")
    workers = [int(w) for w in args.workers.split(",")]
    info = model_info(name)

    # Train split cut to whole batches (every step is a full batch), and to one epoch when that
    # suffices; both loops see the same images and run the same number of steps.
    data = load_dataset(args.data)
    full_batches = len(data.train) // args.batch_size
    wanted = args.warmup + args.steps
    per_epoch = min(wanted, full_batches)
    epochs = math.ceil(wanted / per_epoch)
    total = epochs * per_epoch
    n = per_epoch * args.batch_size
    data = dataclasses.replace(data, train=ImageSet(data.train.x[:n], data.train.y[:n]))
    x_hwc = np.ascontiguousarray(data.train.x.permute(0, 2, 3, 1).numpy())
    y_np = data.train.y.numpy()

    cfg = TrainConfig(epochs=epochs, batch_size=args.batch_size, seed=args.seed)
    torch.manual_seed(args.seed)
    initial = create_model(name).state_dict()

    def fresh() -> nn.Module:
        model = create_model(name)
        model.load_state_dict(initial)
        return model

    runs = {f"baseline_workers{w}": (lambda w=w: baseline(fresh(), x_hwc, y_np, info.mean, info.std, cfg,
                                                             device, total, w)) for w in workers}
    runs["prunelab"] = lambda: prunelab_fit(fresh(), data, info.mean, info.std, cfg, device)
    if args.fp32:
        fp32 = dataclasses.replace(cfg, amp=False)
        runs["prunelab_fp32"] = lambda: prunelab_fit(fresh(), data, info.mean, info.std, fp32, device)
    if args.compile:
        compiled = dataclasses.replace(cfg, compile=True)
        runs["prunelab_compiled"] = lambda: prunelab_fit(fresh(), data, info.mean, info.std, compiled, device)

    # Rounds alternate the runs, and each round starts one run later, so that the load from other
    # work on the machine weighs on all of them alike.
    names = list(runs)
    rates: dict[str, list[float]] = {k: [] for k in names}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            stamps = runs[k]()
            if len(stamps) != total:
                raise RuntimeError(f"{k} ran {len(stamps)} steps, expected {total}")
            rates[k].append(images_per_s(stamps, args.warmup, args.batch_size))
    medians = {k: statistics.median(v) for k, v in rates.items()}

    figures = {
        "device": device_name(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "native_bf16": native_bf16(device), "model": name, "batch": args.batch_size,
        "steps_timed": total - args.warmup,
        "warmup_steps": args.warmup, "rounds": args.rounds, "train_images": n,
        "loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - start, 1),
        "images_per_s": {k: round(v, 1) for k, v in medians.items()},
        "images_per_s_each_round": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "prunelab_over_baseline": {
            f"workers{w}": round(medians["prunelab"] / medians[f"baseline_workers{w}"], 3) for w in workers},
    }
    if args.fp32:
        figures["prunelab_over_prunelab_fp32"] = round(medians["prunelab"] / medians["prunelab_fp32"], 3)
    if args.compile:
        figures["prunelab_compiled_over_baseline"] = {
            f"workers{w}": round(medians["prunelab_compiled"] / medians[f"baseline_workers{w}"], 3)
            for w in workers}
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
