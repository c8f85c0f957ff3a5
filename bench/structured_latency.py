"""Channels priced by measured latency beside channels priced by group L1 alone, at equal latency.

The latency table of the pretrained ResNet-56 (or `--model resnet20`) is measured first
(`prunelab latency-table`'s `measure_table`: onnxruntime, 1 thread, batch 1). For every level of
the reference method (the first of --methods) each other method is pruned to the level whose
latency, as the table predicts it, comes closest to the reference's (a bisection on the level,
with the method's channel choice alone: the refit changes weights, not shapes); every network is
evaluated on the exact test subset as it is and after batch-norm re-estimation (`+bn`), and all
of them, dense included, are then timed side by side in onnxruntime (`measure.latencies`,
round-robin: batch 1, 30 rounds; batch 64, 7) with the table's thread count.

    python bench/structured_latency.py --out runs/bench-structured-latency   # resumable: results.json

Prints one JSON line per network and a Markdown table at the end; exits 0 without ../shared/.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from matching import closest_level

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHECKPOINTS = {"resnet56": SHARED / "models/cifar10/resnet56-4bfd9763.th",
               "resnet20": SHARED / "models/cifar10/resnet20-12fca82f.th"}
DATA = SHARED / "data/cifar10/cifar10_subset.npz"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet56", choices=sorted(CHECKPOINTS))
    p.add_argument("--methods", default="channels-rec-global,channels-rec-latency")
    p.add_argument("--levels", default="0.3,0.5", help="the reference method's levels")
    p.add_argument("--threads", type=int, default=1, help="threads of the table and of the timing")
    p.add_argument("--out", default="runs/bench-structured-latency")
    args = p.parse_args()
    checkpoint = CHECKPOINTS[args.model]
    if not checkpoint.exists() or not DATA.exists():
        print(json.dumps({"skipped": f"{SHARED} absent"}))
        return 0
    from prunelab.experiment.config import SweepConfig
    from prunelab.experiment.workbench import Workbench
    from prunelab.measure import evaluate, latencies, macs
    from prunelab.measure.latency_table import load_table, measure_table, save_table
    from prunelab.recovery.retrain import recalibrate_bn

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table_file, file = out / "table.json", out / "results.json"
    cfg = SweepConfig(checkpoint=str(checkpoint), model=args.model, data=str(DATA), device="cpu")
    wb = Workbench(cfg)
    model, card, (x, y), shape = wb.model.eval(), wb.card, wb.test.tensors(wb.device), wb.input_shape
    if not table_file.exists():
        start = time.perf_counter()
        info = card.info
        save_table(table_file, measure_table(copy.deepcopy(model), args.model, shape, info.stem,
                                             info.classifier, "onnxruntime", args.threads, 1))
        print(json.dumps({"table_seconds": time.perf_counter() - start}), flush=True)
    table = load_table(table_file)
    wb = Workbench(dataclasses.replace(cfg, latency_table=str(table_file)))
    results = json.loads(file.read_text()) if file.exists() else {}
    nets = {"dense": model}
    torch.set_num_threads(2)

    def measure(net) -> dict:
        tuned = copy.deepcopy(net)
        recalibrate_bn(tuned, wb.bn_images(0))  # 50 batches of 128, augmented, seed 0
        return {"correct": evaluate(net, x, y).correct, "correct_bn": evaluate(tuned, x, y).correct,
                "macs": macs(net, shape).total, "predicted_ms": 1e3 * table.predict(net)}

    from prunelab.pruning import PRUNERS

    methods = args.methods.split(",")
    results["dense"] = {"correct": evaluate(model, x, y).correct, "macs": macs(model, shape).total,
                        "predicted_ms": 1e3 * table.predict(model), "n": len(y)}
    for level in (float(v) for v in args.levels.split(",")):
        for method in methods:  # each at the reference's predicted latency at `level`
            key = f"{method}@{level:g}"
            start = time.perf_counter()
            at = level if method == methods[0] else closest_level(
                method, model, wb.ctx, results[f"{methods[0]}@{level:g}"]["predicted_ms"] / 1e3,
                table.predict, steps=12)[0]
            nets[key] = PRUNERS.get(method).prune(copy.deepcopy(model), at, wb.ctx).model
            if key not in results:
                results[key] = {**measure(nets[key]), "level": at, "seconds": time.perf_counter() - start}
                file.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps({key: results[key]}), flush=True)
    for batch, repeats in ((1, 30), (64, 7)):
        timed = latencies(nets, shape, batch, args.threads, repeats=repeats, runtime="onnxruntime")
        for key, t in timed.items():
            results[key][f"ms_b{batch}"] = 1e3 * t.median
    for key, net in nets.items():
        results[key]["inner_widths_pct"] = inner_widths(net, model)
    file.write_text(json.dumps(results, indent=2) + "\n")
    report(results, methods)
    return 0


def inner_widths(net: torch.nn.Module, dense: torch.nn.Module) -> str:
    """Mean kept share of each stage's inner channels (every block's first conv against the dense
    one), stage by stage: where a method took its channels."""
    convs = dict(dense.named_modules())
    stages: dict[str, list[float]] = {}
    for name, module in net.named_modules():
        if name.count(".") == 2 and name.endswith(".conv1"):
            stages.setdefault(name.split(".")[0], []).append(module.out_channels / convs[name].out_channels)
    return "/".join(f"{100 * sum(v) / len(v):.0f}" for v in stages.values())


def report(results: dict, methods: list[str]) -> None:
    dense = results["dense"]
    print(f"\ncorrect of {dense['n']:,} (dense {dense['correct']}); each row at the latency the table "
          f"predicts for {methods[0]} at the level after '@'; onnxruntime, median ms (x faster than dense), "
          f"side by side:\n")
    print("| network | level | inner widths kept by stage (%) | MACs (fewer) | table's ms | b1 ms | b64 ms "
          "| correct / +bn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, r in results.items():
        if key == "dense":
            continue
        b1, b64 = r["ms_b1"], r["ms_b64"]
        print(f"| {key} | {100 * r['level']:.1f}% | {r['inner_widths_pct']} | "
              f"{dense['macs'] / r['macs']:.2f}x | "
              f"{r['predicted_ms']:.3f} | {b1:.3f} ({dense['ms_b1'] / b1:.2f}x) | "
              f"{b64:.2f} ({dense['ms_b64'] / b64:.2f}x) | {r['correct']} / {r['correct_bn']} |")
    print(f"| dense | 0% | {dense['inner_widths_pct']} | 1.00x | {dense['predicted_ms']:.3f} | "
          f"{dense['ms_b1']:.3f} | "
          f"{dense['ms_b64']:.2f} | {dense['correct']} |")


if __name__ == "__main__":
    sys.exit(main())
