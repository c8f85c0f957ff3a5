"""Output error and cost of the second-order solvers, layer by layer, on the pretrained ResNet-56:
each prunable conv of `--layers` (default: every one) is pruned alone to `--level` from the same
Hessian (1,024 calibration images of the training split, seed 0), by magnitude, by SparseGPT
(`sparsegpt`, the `obs-*` methods) and by exact OBS row by row (`exact_obs`, the `obc-*` methods).
The error of a pruned matrix Ŵ is tr((W - Ŵ) H (W - Ŵ)ᵀ), the layer's mean squared output change
on the calibration images; the JSON lists it per layer and sums it, with the seconds each solver
took (one thread). Skips (exit 0) when `../shared/` is absent."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


def error(w: torch.Tensor, new: torch.Tensor, h: torch.Tensor) -> float:
    return float(((w - new) @ h @ (w - new).T).trace())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--level", type=float, default=0.8)
    parser.add_argument("--layers", default="", help="comma-separated weight names (default: every conv)")
    parser.add_argument("--calibration", type=int, default=1024)
    args = parser.parse_args()
    ckpt, data = SHARED / "models/cifar10/resnet56-4bfd9763.th", SHARED / "data/cifar10/cifar10_subset.npz"
    if not ckpt.exists() or not data.exists():
        print(json.dumps({"skipped": f"{SHARED} is absent"}))
        return
    from prunelab.data import load_dataset, normalize
    from prunelab.data.calibration import calibration_images
    from prunelab.io.checkpoint import load_checkpoint
    from prunelab.pruning.calibration import Calibration
    from prunelab.pruning.obs import as_columns, exact_obs, inverse_factor, sparsegpt

    torch.set_num_threads(1)
    model, card = load_checkpoint(ckpt, "resnet56")[:2]
    images = calibration_images(load_dataset(str(data)).train, args.calibration, 0)
    names = args.layers.split(",") if args.layers else [
        n for n, p in model.named_parameters() if p.dim() == 4 and n != "conv1.weight"]
    hessians = Calibration(normalize(images, card.mean, card.std)).hessians(model.eval(), names)
    rows, total = {}, {"magnitude": 0.0, "sparsegpt": 0.0, "exact": 0.0, "sparsegpt_s": 0.0, "exact_s": 0.0}
    for name in names:
        w, h = as_columns(model.get_parameter(name).detach()).double(), hessians[name]
        prune = round(args.level * w.numel())
        magnitude = w.reshape(-1).clone()
        magnitude[torch.topk(w.abs().reshape(-1), prune, largest=False).indices] = 0
        row = {"magnitude": error(w, magnitude.view_as(w), h)}
        for solver, run in (("sparsegpt", sparsegpt), ("exact", exact_obs)):
            start = time.perf_counter()
            new, _ = run(w, inverse_factor(h, 0.01, name), prune=prune)
            row[f"{solver}_s"] = time.perf_counter() - start
            row[solver] = error(w, new, h)
        rows[name] = row
        total = {k: total[k] + row[k] for k in total}
    total["exact_over_sparsegpt"] = total["exact"] / total["sparsegpt"]
    print(json.dumps({"level": args.level, "total": total, "layers": rows}, indent=1))


if __name__ == "__main__":
    main()
