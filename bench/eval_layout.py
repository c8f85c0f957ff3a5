"""Evaluation speed on the CPU by memory layout: a network's float32 forward on contiguous (NCHW)
against channels-last (NHWC) image batches, rounds interleaved, and how far the logits differ.

    python bench/eval_layout.py --model resnet50 --batch 128 --rounds 3 --threads 1

Prints one JSON line: images/s of each layout (best round) and the largest |logit difference|."""

from __future__ import annotations

import argparse
import json
import time

import torch

from prunelab.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, 10, 3).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    seconds = {name: [] for name in layouts}
    logits = {}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, layout in layouts.items():
                start = time.perf_counter()
                logits[name] = model(x.contiguous(memory_format=layout))
                seconds[name].append(time.perf_counter() - start)
    speed = {f"{name}_images_per_s": round(args.batch / min(t), 1) for name, t in seconds.items()}
    a, b = logits["nchw"], logits["channels_last"]
    print(json.dumps({"model": args.model, "batch": args.batch, "threads": args.threads, **speed,
                      "max_abs_logit_diff": float((a - b).abs().max()),
                      "same_argmax": bool((a.argmax(1) == b.argmax(1)).all())}))


if __name__ == "__main__":
    main()
