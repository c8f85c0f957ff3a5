"""ResNet-50 CIFAR variant: file sizes of dense, sparse fp32/fp16, gzip of dense files and the floor,
at unstructured global-L1 levels; plus structured exports at the same levels for latency.

The weights are randomly initialised (seeded), not trained: sizes depend on the counts (nonzeros,
mask entropy) and on how compressible the values are; Gaussian initial values compress somewhat
differently from trained ones (trained weights have more small values and a peakier
distribution, so their byte planes compress a little better), so the value part is indicative.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import torch

from prunelab.io.checkpoint import save_checkpoint
from prunelab.io.formats.sparse import load_sparse, save_sparse, size_floor
from prunelab.io.formats.structured import save_structured
from prunelab.models import CIFAR10_MEAN, CIFAR10_STD, ModelCard, create_model, model_info
from prunelab.pruning import PRUNERS, PruneContext
from prunelab.pruning.masks import apply_masks, prunable_weights
from prunelab.pruning.structured import prune_channels


def gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--levels", default="0.5,0.9,0.95")
    p.add_argument("--out", default="runs/r50_sizes")
    p.add_argument("--structured", action="store_true", help="also write channel-pruned exports")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dense = create_model("resnet50", 10, 3).eval()
    info = model_info("resnet50")
    ref = meta = ModelCard("resnet50", 10, 3, CIFAR10_MEAN, CIFAR10_STD)
    save_checkpoint(out / "dense", dense, meta)
    dense_file = out / "dense" / "model.safetensors"
    results = {"dense": {"file_bytes": dense_file.stat().st_size, "gzip_bytes": gzip_size(dense_file),
                         "params": sum(p.numel() for p in dense.parameters())}}
    print(f"dense safetensors {results['dense']['file_bytes']:,} B, "
          f"gzip -6 {results['dense']['gzip_bytes']:,} B", flush=True)
    weights = prunable_weights(dense, info.classifier)
    for level in (float(v) for v in args.levels.split(",")):
        model = create_model("resnet50", 10, 3).eval()
        model.load_state_dict(dense.state_dict())
        detached = {k: w.detach() for k, w in weights.items()}
        masks = PRUNERS.get("global").masks(detached, level, PruneContext())
        apply_masks(model, masks)
        save_checkpoint(out / f"masked-{level:g}", model, meta)
        masked_file = out / f"masked-{level:g}" / "model.safetensors"
        row = {"dense_file_bytes": masked_file.stat().st_size,
               "gzip_dense_file_bytes": gzip_size(masked_file)}
        for fp16 in (False, True):
            name = "sparse_fp16" if fp16 else "sparse_fp32"
            start = time.perf_counter()
            size = save_sparse(out / f"{name}-{level:g}.sparse", model, ref, fp16=fp16)
            row[f"{name}_bytes"] = size
            row[f"{name}_seconds"] = time.perf_counter() - start
            floor = size_floor(model, 16 if fp16 else 32)
            row[f"{name}_floor_bytes"] = floor.global_
            row[f"{name}_floor_per_layer_bytes"] = floor.per_layer
            row[f"{name}_vs_floor"] = size / floor.global_
        back, _ = load_sparse(out / f"sparse_fp32-{level:g}.sparse")
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            row["fp32_bit_exact"] = bool(torch.equal(back(x), model(x)))
            half, _ = load_sparse(out / f"sparse_fp16-{level:g}.sparse")
            row["fp16_max_abs_diff"] = float((half(x) - model(x)).abs().max())
        row["nonzero"] = sum(int(m.sum()) for m in masks.values())
        row["prunable"] = sum(m.numel() for m in masks.values())
        if args.structured:
            r = prune_channels(dense, info, torch.zeros(1, 3, 32, 32), level, "global")
            file = out / f"structured-{level:g}.safetensors"
            row["structured_bytes"] = save_structured(file, r.model, ref)
            row["structured_achieved"] = r.achieved
            row["structured_params"] = sum(p.numel() for p in r.model.parameters())
        results[f"{level:g}"] = row
        print(f"{level:g}: " + ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v:,}"
                                        for k, v in row.items()), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
