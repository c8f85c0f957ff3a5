"""ResNet-56 (pretrained), structured pruning + short fine-tuning: accuracy, counted MACs and files per level.

Writes OUT/results.json and OUT/<method>-<level>.safetensors (structured export, rebuildable with
prunelab.io.formats.structured.load_structured); latency is measured separately by bench/latency.py
on a quiet CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from prunelab.data import load_dataset, normalize
from prunelab.io.checkpoint import load_checkpoint
from prunelab.io.formats.structured import save_structured
from prunelab.measure import evaluate, macs
from prunelab.models import model_info
from prunelab.pruning import PRUNERS
from prunelab.pruning.structured import prune_channels
from prunelab.training import TrainConfig, fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", default="/work/shared/models/cifar10/resnet56-4bfd9763.th")
    p.add_argument("--data", default="/work/shared/data/cifar10/cifar10_subset.npz")
    p.add_argument("--method", default="channels-layerwise")
    p.add_argument("--levels", default="0.5,0.6,0.7")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--round-to", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/r56_structured")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    model, meta = load_checkpoint(args.checkpoint, "resnet56")
    info = model_info("resnet56")
    ref = meta
    data = load_dataset(args.data)
    x_test = normalize(data.test.x, meta.mean, meta.std)
    y_test = data.test.y
    dense_macs = macs(model, (3, 32, 32)).total
    dense = evaluate(model, x_test, y_test)
    results["dense"] = {"top1": dense.top1, "correct": dense.correct, "n": dense.n, "macs": dense_macs,
                        "params": sum(p.numel() for p in model.parameters())}
    print(f"dense: top-1 {dense.top1:.2f}% ({dense.correct}/{dense.n}), {dense_macs:,} MACs", flush=True)
    method = PRUNERS.get(args.method)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=128, seed=0)
    for level in (float(v) for v in args.levels.split(",")):
        key = f"{args.method}-{level:g}"
        if key in results:
            print(f"{key}: done before, skipped", flush=True)
            continue
        start = time.perf_counter()
        r = prune_channels(model, info, x_test[:1], level, method.allocation, round_to=args.round_to)
        before = evaluate(r.model, x_test, y_test)

        def report(rec, key=key):
            print(f"  {key} epoch {rec['epoch']}: test {rec['test_top1']:.2f}%", flush=True)

        history = fit(r.model, data, meta.mean, meta.std, cfg, torch.device("cpu"), on_epoch=report)
        after = evaluate(r.model, x_test, y_test)
        counted = macs(r.model, (3, 32, 32)).total
        size = save_structured(out / f"{key}.safetensors", r.model.eval(), ref)
        results[key] = {"method": args.method, "requested": level, "achieved": r.achieved,
                        "channel_ratio": r.channel_ratio, "top1_pruned": before.top1, "top1": after.top1,
                        "correct": after.correct, "n": after.n, "macs": counted,
                        "mac_reduction": dense_macs / counted,
                        "params": sum(p.numel() for p in r.model.parameters()), "file_bytes": size,
                        "finetune": asdict(cfg), "history": history.epochs,
                        "seconds": time.perf_counter() - start}
        print(f"{key}: removed {100 * r.achieved:.1f}% of prunable weights, "
              f"{dense_macs / counted:.2f}x fewer MACs, top-1 {before.top1:.2f}% -> {after.top1:.2f}% "
              f"after {args.epochs} epochs "
              f"(dense {dense.top1:.2f}%)", flush=True)
        results_file.write_text(json.dumps(results, indent=2) + "\n")
    results_file.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
