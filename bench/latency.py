"""CPU latency of several models measured side by side (`prunelab.measure.latencies`): round-robin
timing, so load from other processes hits every model alike; median per model, after warm-up.

Models: 'dense:<registry name>' (random init), 'ckpt:<path>:<name>' (a checkpoint),
'structured:<file>' (prunelab export --format structured), 'sparse:<file>' (prunelab sparse
file, run densely as PyTorch does).

Runtimes (`--runtimes`), those of `prunelab.measure.forward_runner`: 'torch' (eager PyTorch,
`torch.inference_mode`) and 'onnxruntime' (the ONNX that `prunelab export --format onnx` writes,
run by onnxruntime's CPU provider with all graph optimisations: batch norm folded into the
convolutions, conv+ReLU fused) and 'onnxruntime-int8' (the int8 ONNX that `--format onnx-int8` writes, QDQ,
calibrated here on random inputs: calibration sets the scales, not the work). All use `--threads`
intra-op threads. Each model's speed-up is against the first model in the same runtime; runtimes
are timed one after another, each round-robin over the models.
"""

from __future__ import annotations

import argparse
import json

import torch

from prunelab.io.checkpoint import load_checkpoint
from prunelab.io.formats.sparse import load_sparse
from prunelab.io.formats.structured import load_structured
from prunelab.measure import RUNTIMES, latencies
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("models", nargs="+", help="label=spec")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--runtimes", default="torch",
                   help="comma-separated: torch, onnxruntime, onnxruntime-int8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--out")
    args = p.parse_args()
    runtimes = args.runtimes.split(",")
    if unknown := set(runtimes) - set(RUNTIMES.names()):
        raise SystemExit(f"unknown runtime(s) {sorted(unknown)}: choose from {', '.join(RUNTIMES.names())}")
    models = {}
    for item in args.models:
        label, _, spec = item.partition("=")
        models[label] = load(spec)
    first = next(iter(models))
    results = {"threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
               "torch": torch.__version__, "batches": {}}
    if "onnxruntime" in runtimes:
        import onnxruntime
        results["onnxruntime"] = onnxruntime.__version__
    for batch in (int(b) for b in args.batches.split(",")):
        row = results["batches"].setdefault(batch, {})
        for runtime in runtimes:
            timed = latencies(models, (3, args.size, args.size), batch, args.threads, args.warmup,
                              args.repeats, runtime)
            base = timed[first].median
            for label, t in timed.items():
                row.setdefault(runtime, {})[label] = {"median_s": t.median, "iqr_s": t.iqr,
                                                      "speedup": base / t.median}
                print(f"batch {batch:3d} {runtime:11s} {label:28s} median {1e3 * t.median:9.2f} ms "
                      f"(IQR {1e3 * t.iqr:.2f})  {base / t.median:.2f}x vs {first}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
