"""Channel pruning side by side with Torch-Pruning used plainly, at equal MACs, no retraining.

The peer: `torch_pruning.pruner.MetaPruner` with group L1 importance (`GroupMagnitudeImportance(p=1)`),
the stem, every block's second conv (the layers writing into the residual stream) and the classifier
left alone, so only channels inside blocks go, the same ratio in every block. For each of its ratios
the MACs are counted (`torch.utils.flop_counter`, as prunelab counts them), and every prunelab
channel method is pruned to the level whose MACs are closest to the peer's (a bisection on the
level). Each network is evaluated on the exact test subset one-shot and after batch-norm
re-estimation (`+bn`: prunelab's own, 50 augmented batches of 128, seed 0, for both sides).

    python bench/structured_vs_peer.py --out runs/bench-structured-peer   # resumable: results.json

Prints one JSON line per row and a Markdown table at the end; exits 0 without ../shared/.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from matching import closest_level

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHECKPOINT = SHARED / "models/cifar10/resnet56-4bfd9763.th"
DATA = SHARED / "data/cifar10/cifar10_subset.npz"
METHODS = ("channels-layerwise,channels-global,channels-inner,channels-inner-global,channels-rec,"
           "channels-rec-global")


def peer(model, ratio: float, example) -> torch.nn.Module:
    """Torch-Pruning's MetaPruner on a copy of `model`: group L1, only channels inside blocks."""
    import torch_pruning as tp

    net = copy.deepcopy(model).eval()
    blocks = [b for stage in (net.layer1, net.layer2, net.layer3) for b in stage]
    ignored = [net.conv1, net.linear] + [b.conv2 for b in blocks]
    pruner = tp.pruner.MetaPruner(net, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=ignored)
    pruner.step()
    return net.eval()


def matched(method: str, model, wb, target_macs: int, counted) -> tuple[torch.nn.Module, float, int]:
    """`method`'s network at the level whose MACs come closest to `target_macs`."""
    from prunelab.pruning import PRUNERS

    level, n = closest_level(method, model, wb.ctx, target_macs, counted)
    return PRUNERS.get(method).prune(copy.deepcopy(model), level, wb.ctx).model, level, int(n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratios", default="0.25,0.32,0.35,0.45,0.55", help="the peer's pruning ratios")
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/bench-structured-peer")
    args = p.parse_args()
    if not CHECKPOINT.exists() or not DATA.exists():
        print(json.dumps({"skipped": f"{SHARED} absent"}))
        return 0
    from prunelab.experiment.config import SweepConfig
    from prunelab.experiment.workbench import Workbench
    from prunelab.measure import evaluate, macs
    from prunelab.recovery.retrain import recalibrate_bn

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    file = out / "results.json"
    results = json.loads(file.read_text()) if file.exists() else {}
    wb = Workbench(SweepConfig(checkpoint=str(CHECKPOINT), model="resnet56", data=str(DATA), device="cpu"))
    model, (x, y) = wb.model.eval(), wb.test.tensors(wb.device)
    shape = wb.input_shape

    def counted(net) -> int:
        return macs(net, shape).total

    def measure(net) -> dict:
        one_shot = evaluate(net, x, y).correct
        tuned = copy.deepcopy(net)
        recalibrate_bn(tuned, wb.bn_images(0))  # 50 batches of 128, augmented, seed 0
        return {"correct": one_shot, "correct_bn": evaluate(tuned, x, y).correct, "macs": counted(net)}

    dense = {"correct": evaluate(model, x, y).correct, "macs": counted(model), "n": len(y)}
    results["dense"] = dense
    for ratio in (float(r) for r in args.ratios.split(",")):
        key = f"peer@{ratio:g}"
        if key not in results:
            start = time.perf_counter()
            results[key] = {**measure(peer(model, ratio, wb.ctx.example_input)), "ratio": ratio,
                            "seconds": time.perf_counter() - start}
            file.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({key: results[key]}), flush=True)
        for method in args.methods.split(","):
            mkey = f"{method}@{key}"
            if mkey in results:
                continue
            start = time.perf_counter()
            net, level, _ = matched(method, model, wb, results[key]["macs"], counted)
            results[mkey] = {**measure(net), "level": level, "seconds": time.perf_counter() - start}
            file.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps({mkey: results[mkey]}), flush=True)
    table(results, args.methods.split(","))
    return 0


def table(results: dict, methods: list[str]) -> None:
    dense = results["dense"]
    print(f"\ncorrect of {dense['n']:,} (dense {dense['correct']}), one-shot / +bn, at the peer's MACs:\n")
    print("| MACs (fewer) | " + " | ".join(["peer", *methods]) + " |")
    print("|---|" + "---:|" * (1 + len(methods)))
    for key in sorted(k for k in results if k.startswith("peer@")):
        row = [results.get(f"{m}@{key}" if m != "peer" else key) for m in ["peer", *methods]]
        cells = [f"{r['correct']} / {r['correct_bn']}" + (f" ({r['macs'] / results[key]['macs']:.3f})"
                                                          if m != "peer" else "") if r else "-"
                 for m, r in zip(["peer", *methods], row, strict=True)]
        print(f"| {dense['macs'] / results[key]['macs']:.2f}x | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
