"""The ResNet-50 study on one lent GPU, in one call: train, sweep, recover, bring everything back.

    bash bench/gpu/run.sh                       # on the device machine (see bench/gpu/README.md)
    python bench/gpu/study.py --smoke --pack P --out O     # the same stages on the CPU, in seconds

Stages, in order, each checking the time left against what the later ones need:
  environment  versions, GPU, the packages the study imports (one line and exit 2 if one is missing)
  data         the pack decoded: 50,000 training images (exact where known), 1,017 exact and 10,000
               JPEG test images
  bench        training images/s (bf16, channels_last), host syncs per step, evaluation images/s
               (fp32), FLOPs per image, and the fraction of the chip's bf16 matmul rate reached
  train        ResNet-50 with recipes/resnet50_cifar10.toml, as many epochs (up to the recipe's)
               as the measured step time allows; saved as fp16 shards under 16 MiB, reloaded,
               and every sweep runs on exactly those reloaded weights
  classic      the classic study: layerwise L1, classifier pruned, 0..100% by 5%, exact test set
  global       global L1 one-shot, exact test set
  classic/global on the 10,000 JPEG test images, if time allows
  recovery     global+iter with learning-rate rewinding toward 98%, epochs per round from the time left
  export       the recovered networks as sparse files, largest level first, while they fit

Every point is stored as it finishes and the stores are packed into $OUT after each one, so a
stage cut off (by the time box or a kill) loses at most its point in flight. $OUT holds at most
8 files: the shards under model/ (three for ResNet-50 in fp16), study.tar.gz (their index and
model.json, the stores, configs, logs, study.json with every figure) and study.log.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

REQUIRED = ("torch", "numpy", "safetensors", "PIL", "sklearn", "matplotlib")  # what the stages import
OPTIONAL = ("torch_pruning", "onnx", "onnxruntime", "tensorboard")  # prunelab's other features
H200_BF16_DENSE = 989e12  # FLOP/s, the datasheet's dense bf16 rate (a lead; the matmul is measured)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes of the study; the smoke plan runs every stage at toy size on the CPU."""

    model: str = "resnet50"
    device: str = "cuda"
    budget_s: float = 550.0
    recipe_overrides: tuple = ()  # (key, value) pairs over recipes/resnet50_cifar10.toml
    bench_warmup: int = 15  # untimed training steps (cuDNN autotuning, allocator)
    bench_steps: int = 30  # timed training steps
    matmul_n: int = 8192  # the bf16 matmul that measures the chip's rate
    levels: tuple = tuple(round(0.05 * i, 2) for i in range(21))
    recovery_levels: tuple = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98)
    recovery_lr: float = 0.1  # peak of the rewound cosine, per batch of `recovery_batch`
    recovery_batch: int = 512
    recovery_max_epochs: int = 3  # per round
    eval_batch: int = 1000
    shard_bytes: int = 16 * 2**20 - 2**18  # under the 16 MiB a returned file may have: 3 shards of fp16
    export_bytes: int = 10 * 2**20  # recovered models brought back as sparse files, at most
    margin_s: float = 25.0  # kept free at the end: packing, and the unknown


SMOKE = Plan(model="resnet20", device="cpu", budget_s=240.0,
             recipe_overrides=(("epochs", 2), ("batch_size", 32), ("lr", 0.05), ("warmup_epochs", 0.5)),
             bench_warmup=1, bench_steps=2, matmul_n=128, levels=(0.0, 0.25, 0.5, 0.75, 1.0),
             recovery_levels=(0.5, 0.8), recovery_batch=32, recovery_max_epochs=1, eval_batch=500,
             shard_bytes=200_000, export_bytes=2**20, margin_s=5.0)

RETURN_LIMITS = {"files": 8, "file_bytes": 16 * 2**20, "total_bytes": 64 * 2**20, "depth": 2}


def returned_files(out: Path) -> list[str]:
    """What in `out` breaks the device machine's limits on what comes back (empty: nothing)."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = []
    if len(files) > RETURN_LIMITS["files"]:
        problems.append(f"{len(files)} files, more than {RETURN_LIMITS['files']}")
    if sum(p.stat().st_size for p in files) > RETURN_LIMITS["total_bytes"]:
        problems.append("more than 64 MiB in all")
    for p in files:
        rel = p.relative_to(out)
        if p.stat().st_size > RETURN_LIMITS["file_bytes"]:
            problems.append(f"{rel} is over 16 MiB")
        if len(rel.parts) - 1 > RETURN_LIMITS["depth"]:
            problems.append(f"{rel} is more than two folders down")
        if not all(c.isalnum() or c in "._-" for part in rel.parts for c in part):
            problems.append(f"{rel} has a character other than letters, digits, '.', '_', '-'")
    return problems


class StudyError(Exception):
    """A fault the user can fix (missing data, a package, too small a time box): one line, exit 2."""


class TimeUp(Exception):
    """The stage's time is spent: stop it; stored points stay."""


class Study:
    """The clock, the record of every figure, the log, and packing into $OUT."""

    def __init__(self, plan: Plan, out: Path, work: Path):
        self.plan, self.out, self.work = plan, out, work
        self.start = time.monotonic()
        self.record: dict = {"plan": dataclasses.asdict(plan), "stages": {}}
        for folder in (out, work, work / "runs"):
            folder.mkdir(parents=True, exist_ok=True)
        self.log_file = open(work / "study.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in main

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.plan.budget_s - self.elapsed()

    def say(self, text: str) -> None:
        line = f"[{self.elapsed():6.1f} s] {text}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def stage(self, name: str, fn, *args):
        """Run one stage, timing it into the record; TimeUp ends the stage, not the study."""
        begin = self.elapsed()
        self.say(f"stage {name}: begins, {self.left():.0f} s left")
        status = "done"
        try:
            result = fn(self, *args)
        except TimeUp as exc:
            status, result = f"cut: {exc}", None
        self.record["stages"][name] = {"seconds": round(self.elapsed() - begin, 2), "status": status}
        self.say(f"stage {name}: {status} in {self.elapsed() - begin:.1f} s")
        self.pack()
        return result

    def pack(self) -> None:
        """Write $OUT/study.tar.gz (stores snapshotted whole, configs, kept models, logs, the
        record) and $OUT/study.log, each through a temporary file: a kill never leaves half."""
        (self.work / "study.json").write_text(json.dumps(self.record, indent=1, default=str) + "\n")
        tmp = self.out / "study.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(self.work.rglob("*")):
                rel = path.relative_to(self.work)
                if not path.is_file() or not _returned(rel):
                    continue
                if path.name == "results.sqlite":
                    _add_bytes(tar, str(rel), _snapshot(path))
                else:
                    tar.add(path, arcname=str(rel))
        os.replace(tmp, self.out / "study.tar.gz")
        shutil.copyfile(self.work / "study.log", self.out / "study.log.tmp")
        os.replace(self.out / "study.log.tmp", self.out / "study.log")


def _returned(rel: Path) -> bool:
    """What comes back: the study's own files, each run's store, config and kept models (not its
    chain states, partial training states or TensorBoard logs: too large, or rebuilt at home)."""
    parts = rel.parts
    if parts[0] in ("study.log", "study.json", "history.json"):
        return True
    if parts[0] == "model":
        return rel.name in ("model.json", "model.safetensors.index.json")
    return (parts[0] == "runs" and len(parts) >= 3
            and (parts[2] in ("config.json", "results.sqlite") or parts[2] == "models"))


def _snapshot(path: Path) -> bytes:
    """A consistent copy of a SQLite store (WAL included), via the backup API."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = sqlite3.connect(path), sqlite3.connect(Path(tmp) / "copy.sqlite")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        return (Path(tmp) / "copy.sqlite").read_bytes()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------- stages


def environment(study: Study) -> str:
    """Versions and the device; a missing package or GPU is a StudyError."""
    import importlib

    missing = []
    versions = {"python": platform.python_version()}
    for name in REQUIRED + OPTIONAL:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
            if name in REQUIRED:
                missing.append(name)
    if missing:
        raise StudyError(f"python package(s) {', '.join(missing)} missing on this machine; carry their "
                         f"wheels in .gpu/whl (python bench/gpu/prepare.py, see bench/gpu/README.md)")
    import torch

    device = study.plan.device
    if device == "cuda" and not torch.cuda.is_available():
        raise StudyError("no CUDA GPU is visible here; run the study on the device machine, or --smoke "
                         "for the CPU rehearsal")
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        versions.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                        multiprocessors=props.multi_processor_count, cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version())
    commit = ROOT / ".gpu" / "commit.txt"
    versions["prunelab_commit"] = commit.read_text().strip() if commit.exists() else "unknown"
    versions["cpu_threads"] = torch.get_num_threads()
    study.record["environment"] = versions
    study.say("environment: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return device


def data(study: Study, pack_path: Path):
    """Decode the pack; returns (mixed dataset, exact dataset, their npz paths)."""
    from pack import unpack

    from prunelab.data import load_dataset

    if not pack_path.is_file():
        raise StudyError(f"the data pack {pack_path} is missing; build it with "
                         f"'python bench/gpu/prepare.py' and carry .gpu")
    try:
        mixed_path, exact_path, report = unpack(pack_path, study.work / "data")
    except (ValueError, OSError, KeyError) as exc:
        raise StudyError(f"the data pack {pack_path} is unusable ({exc}); build it again with "
                         f"'python bench/gpu/prepare.py'") from None
    study.record["data"] = report
    mixed, exact = load_dataset(mixed_path), load_dataset(exact_path)
    study.say(f"data: {len(mixed.train):,} training images ({report['exact_train_images']:,} exact), "
              f"{len(exact.test):,} exact and {len(mixed.test):,} JPEG test images; decoded hashes "
              f"as packed: {report['hash_matches']}")
    return mixed, exact, mixed_path, exact_path


def recipe(plan: Plan):
    from prunelab.config import resolve
    from prunelab.training import TrainConfig

    return resolve(TrainConfig, ROOT / "recipes" / "resnet50_cifar10.toml", **dict(plan.recipe_overrides))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(study: Study, device_name: str, mixed) -> dict:
    """Training and evaluation speed of the study's own model and recipe, measured."""
    import warnings

    import torch

    from prunelab.data import ImageSet, normalize
    from prunelab.measure import evaluate
    from prunelab.training import fit, input_statistics, new_model

    plan, device = study.plan, torch.device(device_name)
    cfg = dataclasses.replace(recipe(plan), epochs=1, drop_last=True, warmup_epochs=0.0)
    window = 3  # steps watched for host syncs, after the timed ones
    total = plan.bench_warmup + plan.bench_steps + window
    n = total * cfg.batch_size
    part = dataclasses.replace(mixed, train=ImageSet(mixed.train.x[:n], mixed.train.y[:n]))
    mean, std = input_statistics(mixed)
    model = new_model(plan.model, mixed, cfg)
    marks: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def on_step(epoch, i, loss):
            if i in (plan.bench_warmup - 1, plan.bench_warmup + plan.bench_steps - 1):
                _sync(device)
                marks[i] = time.perf_counter()
            if device.type == "cuda" and i == plan.bench_warmup + plan.bench_steps - 1:
                torch.cuda.set_sync_debug_mode(1)  # warn at every synchronising call from here
                marks["syncs_from"] = len(caught)
            if device.type == "cuda" and i == total - 1:
                torch.cuda.set_sync_debug_mode(0)
                marks["syncs_to"] = len(caught)

        fit(model, part, mean, std, cfg, device, evaluate_every=0, on_step=on_step)
        syncs = [str(w.message).splitlines()[0] for w in caught[marks.get("syncs_from", 0):
                                                                 marks.get("syncs_to", 0)]]
    last = plan.bench_warmup + plan.bench_steps - 1
    step_s = (marks[last] - marks[plan.bench_warmup - 1]) / plan.bench_steps
    flops = _train_flops_per_image(model, mixed, mean, std, device)
    x = normalize(mixed.test.x.to(device), mean, std)
    evaluate(model, x[:plan.eval_batch], mixed.test.y[:plan.eval_batch].to(device), plan.eval_batch)
    _sync(device)
    begin = time.perf_counter()
    evaluate(model, x, mixed.test.y.to(device), plan.eval_batch)
    eval_s = time.perf_counter() - begin
    rate = _matmul_rate(plan.matmul_n, device)
    result = {"batch": cfg.batch_size, "train_step_s": step_s, "train_images_per_s": cfg.batch_size / step_s,
              "train_flops_per_image": flops, "train_tflops": flops * cfg.batch_size / step_s / 1e12,
              "host_syncs_per_step": len(syncs) / window if device.type == "cuda" else None,
              "sync_examples": sorted(set(syncs))[:3], "eval_images": len(x),
              "eval_images_per_s": len(x) / eval_s, "eval_precision": "float32, TF32 off",
              "matmul": rate}
    result["fraction_of_matmul_rate"] = result["train_tflops"] * 1e12 / rate["flops_per_s"]
    if device.type == "cuda":
        result["fraction_of_datasheet_bf16"] = result["train_tflops"] * 1e12 / H200_BF16_DENSE
    study.record["bench"] = result
    study.say("bench: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in result.items() if k != "matmul")
              + f", matmul {rate['flops_per_s'] / 1e12:.1f} TFLOP/s ({rate['dtype']})")
    return result


def _train_flops_per_image(model, mixed, mean, std, device) -> float:
    """FLOPs of one training step (forward and backward) per image, counted by FlopCounterMode."""
    import contextlib

    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from prunelab.data import normalize

    probe = copy.deepcopy(model).train()
    x = normalize(mixed.train.x[:8].to(device), mean, std).contiguous(memory_format=torch.channels_last)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    counter = FlopCounterMode(display=False)
    with counter, autocast:
        F.cross_entropy(probe(x).float(), mixed.train.y[:8].to(device)).backward()
    return counter.get_total_flops() / 8


def _matmul_rate(n: int, device) -> dict:
    """The chip's matmul rate on random data: bf16 on CUDA, float32 on the CPU (the smoke run)."""
    import torch

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    for _ in range(3):
        a @ b
    _sync(device)
    begin, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - begin) / reps
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "flops_per_s": 2 * n**3 / seconds}


def _point_estimate(study: Study, images: int) -> float:
    """Seconds one sweep point takes: its evaluation at the measured rate, plus a second of
    pruning, counting and storing (measured from the sweeps once they have run)."""
    measured = study.record.get("point_overhead_s")
    overhead = measured if measured is not None else (1.0 if study.plan.device == "cuda" else 0.2)
    return images / study.record["bench"]["eval_images_per_s"] + overhead


def _epoch_s(study: Study, n_images: int, batch: int) -> float:
    return math.floor(n_images / batch) * study.record["bench"]["train_step_s"] * batch / \
        study.record["bench"]["batch"] * 1.05


def _reserve_after_training(study: Study, exact, mixed) -> float:
    """What the stages after training need: the four one-shot sweeps and three recovery rounds."""
    levels = len(study.plan.levels) + 1
    sweeps = 2 * levels * (_point_estimate(study, len(exact.test)) + _point_estimate(study, len(mixed.test)))
    recovery = 3 * _epoch_s(study, len(mixed.train), study.plan.recovery_batch)
    return sweeps + recovery + 20.0  # 20 s: saving, reloading and loading the data for every sweep


def train(study: Study, device_name: str, mixed, exact) -> Path:
    """Train for as many epochs as the time box allows, save fp16 shards into $OUT, reload them."""
    import torch

    from prunelab.io.checkpoint import load_checkpoint, save_checkpoint
    from prunelab.models import ModelCard
    from prunelab.training import epoch_steps, fit, input_statistics, new_model

    plan, cfg = study.plan, recipe(study.plan)
    per_epoch = epoch_steps(len(mixed.train), cfg) * study.record["bench"]["train_step_s"] * 1.03
    reserve = _reserve_after_training(study, exact, mixed)
    room = study.left() - reserve - plan.margin_s
    epochs = min(cfg.epochs, math.floor(room / per_epoch))
    if epochs < 1:
        raise StudyError(f"the time box leaves {room:.0f} s for training, less than one epoch "
                         f"({per_epoch:.0f} s at the measured step time) after reserving {reserve:.0f} s "
                         f"for the sweeps; give --budget-s at least {plan.budget_s - room + per_epoch:.0f}")
    cfg = dataclasses.replace(cfg, epochs=epochs)
    study.say(f"train: {epochs} of the recipe's {recipe(plan).epochs} epochs fit ({per_epoch:.1f} s each, "
              f"{reserve:.0f} s reserved for what follows)")
    mean, std = input_statistics(mixed)
    model = new_model(plan.model, mixed, cfg)
    records: list[dict] = []

    def on_epoch(record):
        records.append(record)
        study.say(f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.3f}, train "
                  f"{record['train_top1']:.1f}%" + (f", exact test {record['test_top1']:.2f}%"
                                                    if "test_top1" in record else ""))
        (study.work / "history.json").write_text(json.dumps(records, indent=1) + "\n")

    begin = time.perf_counter()
    progress = dataclasses.replace(mixed, test=exact.test)  # the exact test images, every few epochs
    history = fit(model, progress, mean, std, cfg, torch.device(device_name),
                  evaluate_every=max(1, epochs // 4), on_epoch=on_epoch)
    seconds = time.perf_counter() - begin
    meta = ModelCard(model=plan.model, num_classes=len(mixed.classes), in_channels=3, mean=mean, std=std,
                          classes=mixed.classes, data="CIFAR-10, 50,000 training images (exact where "
                          "cifar10_subset.npz has them, JPEG q75 elsewhere)", epochs=epochs,
                          top1=history.test_top1, recipe=dataclasses.asdict(cfg))
    folder = study.work / "model"
    save_checkpoint(folder, model.cpu(), meta, max_shard_bytes=plan.shard_bytes, dtype=torch.float16)
    _copy_model(folder, study.out / "model")
    load_checkpoint(folder)  # the shards read back: the sweeps load them the same way
    study.record["train"] = {"epochs": epochs, "recipe_epochs": recipe(plan).epochs, "seconds": seconds,
                             "images_per_s": epochs * len(mixed.train) / seconds,
                             "exact_test_top1_fp32_weights": history.test_top1,
                             "shards": sorted(p.name for p in folder.glob("model-*"))}
    return folder


def _copy_model(folder: Path, out: Path) -> None:
    """The shards into $OUT/model at once (their index and model.json travel in study.tar.gz:
    two files fewer of the eight that may come back)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.glob("model-*-of-*.safetensors")):
        shutil.copyfile(path, out / (path.name + ".tmp"))
        os.replace(out / (path.name + ".tmp"), out / path.name)


ONE_SHOT = (  # (stage, method, classifier pruned, test set)
    ("classic-exact", "layerwise", True, "exact"),
    ("global-exact", "global", False, "exact"),
    ("classic-jpeg", "layerwise", True, "jpeg"),
    ("global-jpeg", "global", False, "jpeg"),
)


def _sweep(study: Study, name: str, cfg, stop_before: float, on_epoch=None) -> list:
    """Run one sweep into WORK/runs/NAME, packing after every point; stop when fewer than
    `stop_before` seconds would be left after the next point."""
    from prunelab.experiment.sweep import Sweep

    sweep = Sweep(cfg, study.work / "runs" / name)
    sweep.on_train_epoch = on_epoch
    times: list[float] = []

    def on_point(p):
        times.append(p.seconds)
        study.say(f"{name}: {p.method} at {p.target_sparsity:.2f}: top-1 {p.top1:.2f}% "
                  f"({p.correct}/{p.n_images}), sparsity {p.sparsity:.4f}, {p.seconds:.1f} s")
        study.pack()

    def should_stop() -> bool:
        nxt = times[-1] if times else 0.0
        return study.left() < stop_before + nxt

    try:
        points = sweep.run(on_point, should_stop)
    finally:
        sweep.store.close()
    if times:
        study.record.setdefault("point_seconds", {})[name] = times
    if len(points) <= 1 or sweep.todo:
        study.say(f"{name}: {len(sweep.todo)} point(s) left undone for lack of time")
    study.record.setdefault("answers", {}).update(_answers(name, points))
    return points


def _answers(name: str, points: list) -> dict:
    from prunelab.experiment.analysis import answer, split

    if len(points) < 2:
        return {}
    dense, curves = split(points)
    out = {}
    for method, curve in curves.items():
        a = answer(dense, curve, 1.0)
        out[f"{name}/{method}"] = {"dense_top1": dense.top1, "answer": a.sparsity, "top1": a.top1,
                                   "ci": [a.ci_low, a.ci_high], "images": dense.n_images,
                                   "curve": [[float(lv), float(t)] for lv, t in zip(curve.levels, curve.top1,
                                                                                   strict=True)]}
    return out


def one_shot(study: Study, name: str, method: str, classifier: bool, test: str, checkpoint: Path,
             paths: dict, n_train: int, device: str) -> None:
    """One one-shot sweep of the whole grid; it stops early so that three recovery rounds fit."""
    from prunelab.experiment.config import SweepConfig

    plan = study.plan
    cfg = SweepConfig(checkpoint=str(checkpoint), data=str(paths[test]), methods=(method,),
                      levels=plan.levels, prune_classifier=classifier, file_size=False,
                      batch_size=plan.eval_batch, device=device)
    later = 3 * _epoch_s(study, n_train, plan.recovery_batch)
    points = _sweep(study, name, cfg, stop_before=later + plan.margin_s)
    overheads = [p.seconds - p.n_images / study.record["bench"]["eval_images_per_s"] for p in points[1:]]
    if overheads:
        study.record["point_overhead_s"] = max(0.0, sum(overheads) / len(overheads))


def recovery(study: Study, checkpoint: Path, paths: dict, n_train: int, device: str) -> None:
    """global+iter with learning-rate rewinding: as many rounds and epochs per round as fit."""
    from prunelab.experiment.config import SweepConfig
    from prunelab.recovery import RecoveryConfig

    plan = study.plan
    epoch = _epoch_s(study, n_train, plan.recovery_batch) * 1.1  # masks applied every step
    room = study.left() - plan.margin_s
    levels, epochs = list(plan.recovery_levels), plan.recovery_max_epochs
    while epochs > 1 and len(levels) * (epochs * epoch + 2) > room:
        epochs -= 1
    while levels and len(levels) * (epochs * epoch + 2) > room:
        levels.pop()
    if not levels:
        raise TimeUp(f"{room:.0f} s left, one round takes {epoch + 2:.0f} s")
    study.say(f"recovery: {len(levels)} rounds of {epochs} epoch(s) ({epoch:.1f} s each) toward "
              f"{levels[-1]:.0%}")
    rc = RecoveryConfig(epochs=epochs, retrain="rewind", lr=plan.recovery_lr, batch_size=plan.recovery_batch)
    cfg = SweepConfig(checkpoint=str(checkpoint), data=str(paths["exact"]), train_data=str(paths["jpeg"]),
                      methods=("global+iter",), levels=tuple(levels), recovery=rc, file_size=False,
                      batch_size=plan.eval_batch, device=device)

    def on_epoch(method, level, seed, record):
        study.say(f"recovery {level:.2f}: epoch {record['epoch']}, loss {record['train_loss']:.3f}")
        if study.left() < plan.margin_s:
            raise TimeUp(f"in the round at {level:.2f}")

    study.record["recovery"] = {"levels": levels, "epochs_per_round": epochs, "lr": plan.recovery_lr,
                                "batch": plan.recovery_batch, "retrain": "rewind"}
    _sweep(study, "iter-exact", cfg, stop_before=epochs * epoch + plan.margin_s, on_epoch=on_epoch)


def export_recovered(study: Study) -> None:
    """The recovered networks as sparse fp32 files (bit-exact), the highest level first, while
    they fit the bytes allowed: `prunelab export` at home reads them from the run folder."""
    from prunelab.experiment.rebuild import point_model
    from prunelab.experiment.runfolder import RunFolder
    from prunelab.experiment.spec import MethodSpec
    from prunelab.experiment.store import Store
    from prunelab.io.formats.sparse import save_sparse

    run = study.work / "runs" / "iter-exact"
    if not (run / "results.sqlite").exists():
        return
    store = Store.open(run)
    try:
        points = sorted((p for p in store.points() if p.method != "dense"), key=lambda p: -p.target_sparsity)
        used = 0
        for p in points:
            if study.left() < study.plan.margin_s:
                raise TimeUp("before the last export")
            pruned, card, _ = point_model(run, p.method, p.target_sparsity, p.seed)
            path = RunFolder(run).point_file(MethodSpec.parse(p.method), p.target_sparsity, p.seed, "sparse")
            path.parent.mkdir(parents=True, exist_ok=True)
            size = save_sparse(path, pruned.model, card)
            if used + size > study.plan.export_bytes:
                path.unlink()
                break
            used += size
            store.add(dataclasses.replace(p, file_bytes=size, file_format="sparse"))
            study.say(f"export: {p.method} at {p.target_sparsity:.2f}: {size:,} bytes")
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=ROOT / ".gpu" / "data" / "cifar10_pack.npz")
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "prunelab-study")
    parser.add_argument("--budget-s", type=float, help="the whole study's time box [default: 550; smoke 240]")
    parser.add_argument("--smoke", action="store_true", help="every stage at toy size on the CPU")
    parser.add_argument("--model", help="another registry model (a rehearsal: --smoke --model resnet50)")
    args = parser.parse_args(argv)
    if args.out is None:
        print("error: no --out folder (and no $OUT); pass the folder that comes back", file=sys.stderr)
        return 2
    plan = SMOKE if args.smoke else Plan()
    if args.budget_s is not None:
        plan = dataclasses.replace(plan, budget_s=args.budget_s)
    if args.model is not None:  # a rehearsal of the real model: its shards at the real size
        plan = dataclasses.replace(plan, model=args.model, shard_bytes=Plan.shard_bytes)
    study = Study(plan, args.out, args.work)
    code = 0
    try:
        code = _stages(study, args.pack)
    except StudyError as exc:
        code = _fail(study, str(exc), 2)
    except Exception as exc:  # noqa: BLE001 - a prunelab user error is one line; anything else a bug
        from prunelab.errors import PrunelabError

        if isinstance(exc, PrunelabError):
            code = _fail(study, str(exc), 2)
        else:
            study.say("".join(traceback.format_exception(exc)))
            code = _fail(study, f"{type(exc).__name__}: {exc} (a bug: the traceback is in study.log)", 1)
    finally:
        study.record["exit_code"] = code
        study.record["seconds"] = study.elapsed()
        study.say(f"study ends with exit code {code} after {study.elapsed():.0f} s")
        study.pack()
        problems = returned_files(args.out)  # the layout is final; the last pack only rewrites
        if problems:
            study.say("what comes back breaks the device's limits: " + "; ".join(problems))
            study.pack()
        study.log_file.close()
    return code


def _fail(study: Study, message: str, code: int) -> int:
    study.record["error"] = message
    study.say(f"error: {message}")
    print(f"error: {message}", file=sys.stderr)
    return code


def _stages(study: Study, pack_path: Path) -> int:
    device = study.stage("environment", environment)
    mixed, exact, mixed_path, exact_path = study.stage("data", data, pack_path)
    paths = {"exact": exact_path, "jpeg": mixed_path}
    study.stage("bench", bench, device, mixed)
    checkpoint = study.stage("train", train, device, mixed, exact)
    for name, method, classifier, test in ONE_SHOT:
        study.stage(name, one_shot, name, method, classifier, test, checkpoint, paths, len(mixed.train),
                    device)
    study.stage("recovery", recovery, checkpoint, paths, len(mixed.train), device)
    study.stage("export", export_recovered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
