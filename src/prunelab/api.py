"""The verbs the command line calls. Each does the library work and returns values; only the CLI
prints, and it passes callbacks for progress."""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed
from .data import load_dataset, with_training_set
from .data.for_network import sources_for
from .data.source import Source
from .errors import PrunelabError
from .experiment import sensitivity as sensitivity_runs
from .experiment.analysis import Answer, answer, check_budget, split
from .experiment.config import SweepConfig, check_profile, reads_of, validate
from .experiment.destination import check_destination
from .experiment.estimate import Estimate
from .experiment.lock import run_lock
from .experiment.point import file_format_of, keep, make_point
from .experiment.rebuild import point_model
from .experiment.runfolder import RunFolder
from .experiment.spec import MethodSpec
from .experiment.store import DENSE, SENSITIVITY, SWEEP, Point, Store
from .experiment.sweep import Sweep
from .experiment.workbench import Workbench, check_fits, pick_device
from .io.checkpoint import save_checkpoint
from .io.formats import Exported, export_model, get_format, read_network
from .measure import Evaluation, evaluate_batches
from .models import ModelCard
from .pruning import Pruned
from .pruning.masks import check_sparsity
from .quant.model import dequantized
from .training import History, TrainConfig, fit, input_statistics, new_model
from .training.recipe import check_from_scratch


def train(model_name: str, data: str, data_root: str | None, download: bool, out: Path, cfg: TrainConfig,
          device: str = "auto", on_step=None, on_epoch=None, train_data: str | None = None,
          on_plan=None) -> tuple[ModelCard, History]:
    """Train `model_name` from scratch on `data` (or on `train_data`'s training images, `data`'s
    exact pixels kept where it records their positions) and save the checkpoint into `out`; the
    training state is saved every few minutes and the same call resumes. With `cfg.time_budget`
    the epochs are sized from measured step times before the first and kept on every resume;
    `on_plan(epochs, plan)` is told the epochs (and the plan, when measured now). Under torchrun:
    one model with DDP."""
    check_from_scratch(cfg)
    dataset = load_dataset(data, data_root, download)
    if train_data is not None:
        dataset = with_training_set(dataset, load_dataset(train_data, data_root, download), train_data)
    # A model trained here is normalised with its training data's per-channel statistics,
    # recorded in its card; the registry's defaults describe foreign checkpoints.
    mean, std = input_statistics(dataset)
    model = new_model(model_name, dataset, cfg)  # the initial weights too come from the recipe's seed
    out.mkdir(parents=True, exist_ok=True)
    where = pick_device(device)
    cfg, plan = _budgeted(model, dataset, mean, std, cfg, where, out)
    if on_plan is not None:
        on_plan(cfg.epochs, plan)
    history = fit(model, dataset, mean, std, cfg, where, state_dir=out, distributed_data=True,
                  on_step=on_step, on_epoch=on_epoch)
    last = history.epochs[-1] if history.epochs else {}
    training = {"train_data": train_data or data, "train_images": len(dataset.train),
                "seconds": last.get("seconds"), "cpu_seconds": last.get("cpu_seconds"),
                "commit": _commit()}
    card = ModelCard(model=model_name, num_classes=len(dataset.classes), in_channels=dataset.train.x.shape[1],
                     mean=mean, std=std, classes=dataset.classes, input_size=dataset.image_size,
                     data=dataset.source, epochs=cfg.epochs,
                     top1=history.test_top1, recipe=dataclasses.asdict(cfg), training=training)
    if distributed.is_main():
        save_checkpoint(out, model.cpu(), card)
    return card, history


def _budgeted(model, dataset, mean, std, cfg: TrainConfig, device, out: Path):
    """`cfg` with its epochs sized to its time budget (measured now, or as a saved state planned
    them), and the plan when one was measured now."""
    if cfg.time_budget is None:
        return cfg, None
    from .training import STATE_FILE
    from .training.budget import plan as plan_epochs
    from .training.fit import load_state

    state = out / STATE_FILE
    if state.exists():  # resume: the epochs the first call planned (fit refuses another budget)
        saved = load_state(state, torch.device("cpu"))["config"]
        if saved.get("time_budget") is not None:
            return dataclasses.replace(cfg, epochs=int(saved["epochs"])), None
    plan = plan_epochs(model, dataset, mean, std, cfg, device)
    return dataclasses.replace(cfg, epochs=plan.epochs), plan


def _commit() -> str | None:
    """The git commit of the prunelab source that runs, when it is a clean checkout's."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def answers(points: list[Point], methods: tuple[str, ...], budget: float) -> dict[str, Answer]:
    """Each swept method's answer: the largest level within `budget` points of dense."""
    dense, curves = split(points)
    return {m: answer(dense, curves[m], budget) for m in methods if m in curves}


def sweep(cfg: SweepConfig, out: Path, budget: float, on_point=None, on_train_epoch=None,
          on_start: Callable[[int, int, Estimate | None], None] | None = None, on_layer=None
          ) -> tuple[list[Point], dict[str, Answer]]:
    """Run (or resume) a sweep; `on_start(total, done, estimate)` is told the size of this process's
    share and, under a --time-budget, what its points are estimated to take;
    `on_layer(layer, index, layers)` where a slow pruner (second-order) is."""
    check_budget(budget)  # before hours of points, not after
    check_destination(out, reads_of(cfg), kind="run")
    with run_lock(out):
        run = Sweep(cfg, out, kind=SWEEP)
        try:
            if on_start is not None:
                total = len(run.mine())
                on_start(total, total - len(run.todo), run.estimate)
            run.on_train_epoch = on_train_epoch
            run.workbench.on_layer = on_layer
            points = run.run(on_point)
        finally:
            run.store.close()
    return points, answers(points, tuple(m.text for m in run.methods), budget)


def sensitivity(cfg: SweepConfig, out: Path, on_point=None, on_start=None, channels: bool = False) -> dict:
    """Prune each layer alone at every level, or with `channels` each block's inner channels alone at
    every channel ratio (resumable); returns the profile (also in RUN)."""
    check_destination(out, reads_of(cfg), kind="run")
    with run_lock(out):
        run = Sweep(cfg, out, kind=SENSITIVITY)
        try:
            if on_start is not None:
                on_start(len(sensitivity_runs.plan(run, channels)))
            return sensitivity_runs.run(run, on_point, channels)
        finally:
            run.store.close()


@dataclass(frozen=True)
class Export:
    """What `export` wrote: the file, and the pruned network it holds.

    Attributes:
        top1: for a lossy format (int8 ONNX, fp16 values), (the file's top-1, the network's
            top-1) on the run's test images, percent; None for formats that hold the network exactly.
    """

    exported: Exported
    pruned: Pruned
    level: float
    top1: tuple[float, float] | None = None


def export(run: Path | None, cfg: SweepConfig | None, method: str, level: float, seed: int, fmt: str,
           out: Path, input_size: int | None = None) -> Export:
    """Write one point's network to `out` in `fmt`, reload it and compare outputs.

    From a swept `run` the point must be stored (retrained points come from the model the sweep
    kept); from a checkpoint (`cfg`, with `run` None) the point is computed here, as a sweep would,
    with the same settings (recovered methods need `cfg.data`; a chain steps through `cfg.levels`).
    `input_size` (image height = width, for methods that read no data) defaults to the checkpoint's.
    """
    if input_size is not None and input_size < 1:
        raise PrunelabError(f"--input-size must be at least 1 pixel, got {input_size}")
    if (run is None) == (cfg is None):
        raise PrunelabError("pass either a RUN folder or --checkpoint, not both or neither")
    check_destination(out, reads_of(cfg) if cfg is not None else _run_reads(run))
    spec = MethodSpec.parse(method, allow_dense=True)
    check_sparsity(level, "--level")
    channels = not spec.is_dense and spec.pruner.shrinks
    file_format = get_format(fmt, channels, spec.quant)
    reads_data = file_format.needs_images or file_format.lossy
    if run is not None:
        pruned, card, shape = point_model(run, spec.text, level, seed)
    else:
        pruned, card, shape = _compute(cfg, spec, level, seed, input_size, reads_data)
    test, training = _run_sources(run, cfg, card) if reads_data else (None, None)
    if file_format.needs_images:
        if training is None:
            raise PrunelabError(f"format '{file_format.name}' calibrates on training images, and the run's "
                                f"data has no training split; pass data with one")
        n = min(cfg.calibration if cfg else SweepConfig.calibration, len(training))
        file_format = file_format.calibrated(training.sample(n, 0, torch.device("cpu")))  # seeded draw
    exported = export_model(pruned.model, card, file_format, out, shape)
    if not file_format.lossy:
        return Export(exported, pruned, level)
    cpu = torch.device("cpu")
    hits = [file_format.logits(exported.path, x).argmax(1) == y for x, y in test.batches(1000, cpu)]
    file_top1 = 100.0 * float(torch.cat(hits).float().mean())
    model_top1 = evaluate_batches(pruned.model, test.batches(500, cpu)).top1
    return Export(exported, pruned, level, (file_top1, model_top1))


@dataclass(frozen=True)
class Scored:
    """A network file scored on a dataset's test images: what the file is, and its evaluation."""

    path: Path
    kind: str  # 'checkpoint', or the export format: 'sparse', 'quantized', 'structured'
    card: ModelCard
    evaluation: Evaluation
    data: str


def evaluate(path: Path, data: str, model: str | None = None, data_root: str | None = None,
             download: bool = False, batch_size: int = 500, device: str = "auto",
             classes_match: bool = True) -> Scored:
    """Score the network in `path` (a checkpoint, or a file `export` wrote) on `data`'s test
    images, as its card says to feed them: an exported network checked outside the sweep."""
    network, card, kind = read_network(path, model)
    test, _ = sources_for(card, data, data_root, download=download)
    check_fits(test, card, data, classes_match)
    where = pick_device(device)
    evaluation = evaluate_batches(network.to(where), test.batches(batch_size, where))
    return Scored(Path(path), kind, card, evaluation, data)


def _run_reads(run: Path) -> list[str]:
    """The files a swept run was computed from (its checkpoint, data): an export reads them again."""
    store = Store.open(run)
    config = store.meta("config") or {}
    store.close()
    checkpoint = config.get("checkpoint_from_run")
    return [run / checkpoint if checkpoint else None, config.get("data"), config.get("train_data")]


def _run_sources(run: Path | None, cfg: SweepConfig | None, card: ModelCard) -> tuple[Source, Source | None]:
    """(test images, training images or None) of the data a run (or a --checkpoint export's
    settings) names, as `card`'s network takes them: a lossy file is measured on the first and
    calibrated on the second."""
    if run is not None:
        store = Store.open(run)
        config = store.meta("config") or {}
        store.close()
        name, root, train = config.get("data"), config.get("data_root"), config.get("train_data")
    else:
        name, root, train = cfg.data, cfg.data_root, cfg.train_data
    return sources_for(card, name, root, train)


def _compute(cfg: SweepConfig, method: MethodSpec, level: float, seed: int, input_size: int | None,
             reads_data: bool = False):
    """A point computed from the checkpoint alone (data loaded only if the method or the file
    format needs it); a quantized method's is its base's network, quantized."""
    spec = method.base
    steps = (*(lv for lv in cfg.levels if lv < level), level)  # the levels this point is pruned through
    validate(dataclasses.replace(cfg, methods=() if spec.is_dense else (spec.text,), levels=steps))
    needs_data = not spec.from_checkpoint or (not spec.is_dense and spec.pruner.needs_calibration)
    wb = Workbench(cfg, input_size, reads_data=needs_data or reads_data)
    check_profile([] if spec.is_dense else [spec], wb.profile)
    chain = [lv for lv in cfg.levels if lv < level] if spec.recovery.chained else []
    with tempfile.TemporaryDirectory() as tmp:  # a chain's states, and retraining's, live here
        folder = RunFolder(tmp)
        for lv in [*chain, level]:
            pruned = make_point(spec, lv, seed, wb, folder)
            if spec.keeps_model:  # a channel chain's next level starts from this file
                fmt = file_format_of(pruned)
                keep(pruned.model, fmt, folder.point_file(spec, lv, seed, fmt), wb.card, wb.input_shape)
    # The workbench's model is shared by its points: the result gets its own copy, in the memory
    # format a file reloads into (retraining leaves it channels_last).
    model = copy.deepcopy(pruned.model).cpu().eval().to(memory_format=torch.contiguous_format)
    if method.quant is not None:
        model = dequantized(model, method.quant, fold=True)  # what its file will hold
    return Pruned(model, pruned.masks, pruned.structured), wb.card, wb.input_shape


def latency_table(cfg: SweepConfig, out: Path, batch: int = 1, input_size: int | None = None,
                  on_layer: Callable[[str, int, int], None] | None = None):
    """Time every conv and linear layer of `cfg.checkpoint` alone in `cfg.runtime` with
    `cfg.threads` threads at `batch` images, at the widths channel pruning could leave it; write
    the table to `out` (JSON) and return it (`measure.latency_table.LatencyTable`)."""
    from .measure.latency_table import measure_table, save_table

    check_destination(out, reads_of(cfg))
    wb = Workbench(cfg, input_size, reads_data=False)
    info = wb.card.info
    table = measure_table(copy.deepcopy(wb.model), wb.card.model, wb.input_shape, info.stem, info.classifier,
                          cfg.runtime, cfg.threads, batch, on_layer=on_layer)
    save_table(out, table)
    return table


__all__ = ["DENSE", "Export", "answers", "export", "latency_table", "sensitivity", "sweep", "train"]
