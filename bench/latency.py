"""CPU latency of several models measured side by side: round-robin timing, so load from other
processes hits every model alike; median per model, after warm-up.

Models: 'dense:<registry name>' (random init), 'ckpt:<path>:<name>' (a checkpoint),
'structured:<file>' (prunelab export --format structured), 'sparse:<file>' (prunelab sparse
file, run densely as PyTorch does).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from prunelab.checkpoint import load_checkpoint
from prunelab.export import load_sparse, load_structured
from prunelab.models import create_model


def load(spec: str) -> torch.nn.Module:
    kind, _, rest = spec.partition(":")
    if kind == "dense":
        return create_model(rest).eval()
    if kind == "ckpt":
        path, _, name = rest.rpartition(":")
        return load_checkpoint(path, name)[0].eval()
    if kind == "structured":
        return load_structured(rest)[0]
    if kind == "sparse":
        return load_sparse(rest)[0]
    raise SystemExit(f"unknown model spec {spec}")


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("models", nargs="+", help="label=spec")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for item in args.models:
        label, _, spec = item.partition("=")
        models[label] = load(spec)
    results = {"threads": torch.get_num_threads(), "warmup": args.warmup, "repeats": args.repeats,
               "torch": torch.__version__, "batches": {}}
    for batch in (int(b) for b in args.batches.split(",")):
        x = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        times = {label: [] for label in models}
        for i in range(args.warmup + args.repeats):
            for label, model in models.items():
                start = time.perf_counter()
                model(x)
                if i >= args.warmup:
                    times[label].append(time.perf_counter() - start)
        results["batches"][batch] = {label: {"median_s": float(np.median(t)),
                                             "iqr_s": float(np.subtract(*np.percentile(t, [75, 25])))}
                                     for label, t in times.items()}
        base = next(iter(models))
        for label, t in results["batches"][batch].items():
            ratio = results["batches"][batch][base]["median_s"] / t["median_s"]
            print(f"batch {batch:3d} {label:28s} median {1e3 * t['median_s']:9.2f} ms "
                  f"(IQR {1e3 * t['iqr_s']:.2f})  {ratio:.2f}x vs {base}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
