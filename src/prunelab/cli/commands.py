"""The commands: each parses its options once into config objects, calls `prunelab.api`, prints."""

from __future__ import annotations

import functools
import shutil
import textwrap
import time
from pathlib import Path

import click
from tqdm import tqdm

from .. import __version__, api
from ..config import resolve
from ..errors import PrunelabError
from ..experiment.config import SweepConfig
from ..experiment.destination import check_destination
from ..recovery import RecoveryConfig
from ..training import TrainConfig
from ..training.recipe import check_from_scratch
from .options import options, values
from .out import bar, echo_answers, say, show_now, start_at, write_report
from .tensorboard import TensorBoard

DATA = ("data", "data_root", "download")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="prunelab")
def cli():
    """prunelab: how much of a trained CNN can be pruned before accuracy suffers."""


def config_option(f):
    return click.option("--config", "config_file", type=click.Path(dir_okay=False),
                        help="TOML/JSON file of values; options given here override it.")(f)


def sweep_config(checkpoint: str | None, config_file, given: dict) -> SweepConfig:
    """The sweep's settings from defaults, the file, then the options given (resolved once)."""
    return resolve(SweepConfig, config_file, checkpoint=checkpoint, **values(SweepConfig, given),
                   recovery=values(RecoveryConfig, given))


# ---------------------------------------------------------------- listings


@cli.command()
@click.option("--torchvision/--no-torchvision", "with_tv", default=False,
              help="Also list every torchvision classifier.")
def models(with_tv: bool):
    """List the models prunelab can build."""
    from ..models import model_info, model_names

    for name in model_names(include_torchvision=with_tv):
        info = model_info(name)
        say(f"{name:28s} classifier={info.classifier:14s} {info.description}")
    say(f"{'torchvision.<name>':28s} any torchvision classifier (--torchvision lists them)")
    say(f"{'timm.<name>':28s} any timm classifier (pip install 'prunelab[timm]')")
    trained = _zoo(ZOO)
    if trained:
        say(f"trained networks shipped in {ZOO} (sweep one by its path):")
        for line in trained:
            say(f"  {line}")


ZOO = Path(__file__).resolve().parents[3] / "zoo"  # the project's trained networks, in a checkout


def _zoo(root: Path) -> list[str]:
    """One line per checkpoint folder under `root`: its model and its recorded test top-1."""
    import json

    lines = []
    for card_file in sorted(root.glob("*/model.json")) if root.is_dir() else []:
        try:
            card = json.loads(card_file.read_text())
            top1, data = float(card["top1"]), Path(str(card.get("data", "?"))).name
            lines.append(f"{card_file.parent.name:26s} {card['model']}, {top1:.2f}% test top-1 on {data}")
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"{card_file.parent.name:26s} (its model.json cannot be read)")
    return lines


@cli.command()
def methods():
    """List pruning methods, recoveries and quantizers; a sweep method is
    '<method>[+<recovery>][@<quantizer><bits>[+ft|+bn]]'."""
    from ..pruning import PRUNERS
    from ..quant import BITS_RANGE, QUANTIZERS
    from ..recovery import RECOVERIES, RETRAIN_MODES

    # masks first, then fixed patterns, then channel removal; alphabetical within each
    members = sorted(PRUNERS, key=lambda p: (p.shrinks, p.fixed_level is not None, p.name))
    width = max(len(p.name) for p in members) + 1
    row = functools.partial(_listing_row, width=width, columns=shutil.get_terminal_size((100, 24)).columns)
    say("methods:")
    for p in members:
        say(row(p.name, p.description))
    say("recoveries (append with '+', e.g. global+iter):")
    for r in sorted(RECOVERIES, key=lambda r: (not r.one_shot, r.trains, r.chained, r.name)):
        say(row("+" + r.name, r.description))
    say("retraining (--retrain):")
    for m in RETRAIN_MODES:
        say(row(m.name, m.description))
    low, high = BITS_RANGE
    say(f"quantizers ('@<name><bits>', bits {low}-{high}, e.g. global+ft@kmeans4; or --bits):")
    for q in QUANTIZERS:
        say(row(q.name, q.description))
    say("  then optionally:")
    say(row("+ft", "fine-tune the codebooks or scales with the codes held (e.g. @kmeans3+ft)"))
    say(row("+bn", "re-estimate batch-norm statistics of the quantized network (e.g. @kmeans3+bn)"))


def _listing_row(name: str, text: str, width: int, columns: int) -> str:
    """'  name   text', the text wrapped to the terminal and continued under its own column."""
    return textwrap.fill(text, width=max(columns - 1, width + 40), initial_indent=f"  {name:{width}s} ",
                         subsequent_indent=" " * (width + 3))


# ---------------------------------------------------------------- train


@cli.command()
@click.option("--model", "model_name", required=True, help="Registry name, see 'prunelab models'.")
@options(SweepConfig, only=(*DATA, "train_data"))
@options(TrainConfig)
@config_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for model.safetensors + model.json (resumes a run left there).")
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace a trained model in --out that has no training state left to resume.")
def train(model_name, config_file, device, out, overwrite, **given):
    """Train a model from scratch and save it (safetensors + JSON metadata)."""
    cfg = resolve(TrainConfig, config_file, **values(TrainConfig, given))
    data = resolve(SweepConfig, checkpoint="", **values(SweepConfig, given))
    card = run_train(model_name, data, Path(out), cfg, device, reads=[config_file], overwrite=overwrite)
    hours = (card.training.get("cpu_seconds") or 0) / 3600
    say(f"saved {model_name} ({card.top1:.2f}% test top-1 after {card.epochs} epochs, "
        f"{hours:.2f} CPU hours) to {Path(out) / 'model.safetensors'}")


def _writable_folder(path: Path, what: str) -> None:
    """Create `path` as a folder, or say in one line why it cannot be one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise PrunelabError(f"{what} {path}: {blocker} is a file, not a folder; "
                            f"pass another {what}") from None
    except OSError as exc:
        raise PrunelabError(f"{what} {path} cannot be created ({exc.strerror}); "
                            f"pass another {what}") from None


def _check_train_out(out: Path, reads: list, overwrite: bool) -> None:
    """--out is no input, and a trained model there is replaced only when asked: a folder holding a
    training state resumes it, one holding only the model would lose it."""
    from ..experiment.destination import check_destination, is_checkpoint_folder
    from ..training import STATE_FILE

    check_destination(out, reads, kind="checkpoint")
    if overwrite or (out / STATE_FILE).exists() or not is_checkpoint_folder(out):
        return
    raise PrunelabError(f"--out {out} already holds {_trained(out)} and no training state ({STATE_FILE}) "
                        f"to resume; pass --overwrite to replace it with a new training, or another --out")


def _trained(folder: Path) -> str:
    """'a trained smallcnn (90.00% test top-1, 3 epochs: model.json, model.safetensors)', as far as
    its card can be read."""
    import json

    files = ", ".join(sorted(p.name for p in folder.iterdir() if p.name.startswith("model")))
    try:
        card = json.loads((folder / "model.json").read_text())
        top1, epochs = float(card["top1"]), int(card["epochs"])
        said = f"{card['model']} ({top1:.2f}% test top-1, {epochs} epochs: {files})"
    except (OSError, ValueError, KeyError, TypeError):
        said = f"model ({files})"
    return f"a trained {said}"


def run_train(model_name: str, data: SweepConfig, out: Path, cfg: TrainConfig, device: str, quiet=False,
              reads: list = (), overwrite: bool = False):
    """`api.train` with a progress bar, epoch lines and TensorBoard."""
    from .. import distributed
    from ..models import model_info

    model_info(model_name)  # an unknown name, or a recipe that cannot train, is one line before any bar
    check_from_scratch(cfg)
    _check_train_out(out, [data.data, data.train_data, *reads], overwrite)
    images = len(_train_images(data))
    if images == 0:
        raise PrunelabError(f"{data.train_data or data.data} has no training images to train on; pass data "
                            f"with a training split (--data, or --train-data)")
    _writable_folder(out, "--out")
    per_epoch = -(-images // cfg.batch_size)
    progress = bar(cfg.epochs * per_epoch, f"train {model_name}", "step", quiet=quiet)
    last, board = {}, TensorBoard(out, enabled=distributed.is_main())

    def on_plan(epochs, plan):
        progress.reset(total=epochs * per_epoch)
        if plan is not None and not quiet and distributed.is_main():
            steps = ", ".join(f"{s}px {t:.2f} s" for s, t in sorted(plan.step_seconds.items()))
            tqdm.write(f"time budget {plan.budget_s / 3600:.2f} h: {plan.epochs} epochs planned "
                       f"({plan.planned_s / 3600:.2f} h; a step {steps}; an evaluation "
                       f"{plan.eval_seconds:.0f} s)")

    def on_step(epoch, i, loss):
        if progress.n == 0:  # a resumed run's bar starts where it stopped, its rate from here on
            start_at(progress, epoch * per_epoch + i)
        progress.update(1)
        if i % 25 == 0:  # reading the loss waits for the device: not every step
            tested = {"test": f"{last['test_top1']:.1f}%"} if "test_top1" in last else {}
            progress.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", **tested)

    def on_epoch(record):
        last.update(record)
        board.epoch(record)
        if not quiet and distributed.is_main():
            tqdm.write(f"epoch {record['epoch']:3d}  {record['size']}px  loss {record['train_loss']:.4f}  "
                       f"train {record['train_top1']:5.1f}%  test {record['test_top1']:5.2f}%  "
                       f"{record['seconds'] / 3600:.2f} h")

    try:
        card, history = api.train(model_name, data.data, data.data_root, data.download, out, cfg, device,
                                  on_step, on_epoch, train_data=data.train_data, on_plan=on_plan)
    finally:
        progress.close()
        board.close()
    if distributed.is_main():
        import json

        (out / "history.json").write_text(json.dumps(history.epochs, indent=2) + "\n")
    return card


def _train_images(data: SweepConfig):
    from ..data import load_dataset

    return load_dataset(data.train_data or data.data, data.data_root, data.download).train


# ---------------------------------------------------------------- sweep and sensitivity


@cli.command()
@click.argument("checkpoint", type=click.Path())
@options(SweepConfig)
@options(RecoveryConfig)
@click.option("--budget", type=float, default=1.0, show_default=True,
              help="Accuracy budget in top-1 points for the answer.")
@config_option
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder; the same command again resumes what is missing.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write the report when the sweep is done.")
def sweep(checkpoint, budget, config_file, out, report, **given):
    """Prune a trained model at every level with every method, measure, store and answer."""
    from .. import distributed

    cfg = sweep_config(checkpoint, config_file, given)
    answers = run_sweep(cfg, Path(out), budget)
    echo_answers(answers)
    if report and distributed.is_main():
        write_report(Path(out), budget)


def run_sweep(cfg: SweepConfig, out: Path, budget: float, quiet: bool = False):
    """`api.sweep` with a progress bar and TensorBoard; returns the answers."""
    from .. import distributed

    shown: dict = {}  # the bar and the board, made once the sweep is set up (its folder writable)

    def on_start(total, done, estimate=None):
        if estimate is not None and not quiet and distributed.is_main():
            sized = " (--fit-epochs)" if cfg.fit_epochs else ""
            epochs = f" at --epochs {estimate.epochs}{sized}" if estimate.steps else ""
            tqdm.write(f"time budget {cfg.time_budget / 3600:.2f} h: {estimate.points} points{epochs}, "
                       f"estimated at {estimate}")
        shown["bar"] = bar(total, "sweep", "point", initial=done, quiet=quiet)
        shown["board"] = TensorBoard(out, enabled=distributed.is_main())

    def on_point(p):
        shown["board"].point(p)
        shown["bar"].update(1)
        shown["bar"].set_postfix(method=p.method, level=f"{p.target_sparsity:.2f}", top1=f"{p.top1:.1f}%")

    def on_train_epoch(method, level, seed, record):
        shown["board"].epoch(record, prefix=f"retrain/{method}/level{round(1000 * level):04d}/seed{seed}")
        show_now(shown["bar"], method=method, level=f"{level:.2f}", epoch=record["epoch"],
                 train_loss=f"{record['train_loss']:.3f}", train_top1=f"{record['train_top1']:.1f}%")

    def on_layer(layer, i, layers):  # a second-order point works layer by layer
        shown["bar"].set_postfix(layer=f"{i + 1}/{layers} {layer}")

    try:
        _, answers = api.sweep(cfg, out, budget, on_point, on_train_epoch, on_start, on_layer)
    finally:
        for thing in shown.values():
            thing.close()
    return answers


@cli.command()
@click.argument("checkpoint", type=click.Path())
@options(SweepConfig, only=(*DATA, "model", "prune_classifier", "batch_size", "device"))
@click.option("--levels", default="0.2:1:0.2", show_default=True,
              help="Sparsity levels for each layer alone (with --channels: shares of each block's inner "
                   "channels), 'start:stop:step' or a list.")
@click.option("--channels/--no-channels", default=False, show_default=True,
              help="Profile each block's inner channels removed alone, for channels-sensitivity.")
@options(SweepConfig, only=("round_to",))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder; the same command again resumes what is missing.")
def sensitivity(checkpoint, levels, channels, out, **given):
    """Prune each layer alone across levels: a curve per layer, and a profile for the
    'sensitivity' method (sweep --methods sensitivity --sensitivity RUN); with --channels, each
    block's inner channels alone, a profile for 'channels-sensitivity'."""
    from ..experiment.sensitivity import PREFIX, most_sensitive
    from ..experiment.spec import parse_levels
    from ..report.sensitivity import plot

    cfg = resolve(SweepConfig, checkpoint=checkpoint, methods=(), levels=parse_levels(levels),
                  **values(SweepConfig, given))
    progress = None

    def on_start(total):
        nonlocal progress
        progress = bar(total, "sensitivity", "point")

    def on_point(p):
        progress.update(1)
        progress.set_postfix(layer=p.method.removeprefix(PREFIX), level=f"{p.target_sparsity:.2f}",
                             top1=f"{p.top1:.1f}%")

    try:
        profile = api.sensitivity(cfg, Path(out), on_point, on_start, channels)
    finally:
        if progress is not None:
            progress.close()
    files = plot(profile, out)
    say("most sensitive (lowest mean top-1 over the levels): "
        + ", ".join(f"{n} ({top1:.1f}%)" for n, top1 in most_sensitive(profile)))
    say(f"profile: {Path(out) / 'sensitivity.json'}; plot: {files[0]}")


# ---------------------------------------------------------------- report, retime, export


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--budget", type=float, default=1.0, show_default=True,
              help="Accuracy budget in top-1 points for the answer.")
@click.option("--gif/--no-gif", default=True, show_default=True, help="Write the pruning animation.")
def report(run, budget, gif):
    """Write results.csv, report.md, plots and the animation from a run's stored results."""
    rep = write_report(Path(run), budget, gif)
    echo_answers(rep.answers)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--runtime", help="What runs the forwards: torch, onnxruntime or onnxruntime-int8 (the "
                                "int8 ONNX) [default: the sweep's, else torch].")
@click.option("--threads", type=int, help="CPU threads [default: the sweep's, else 1].")
@click.option("--device", default="cpu", show_default=True, help="Where eager models run: cpu or cuda.")
@click.option("--budget", type=float, default=1.0, show_default=True,
              help="Accuracy budget in top-1 points for the rewritten report.")
def retime(run, runtime, threads, device, budget):
    """Time every point of a run again, side by side, and rewrite the report.

    A sweep times each point when it finishes, minutes or hours apart, under whatever else the
    machine does; here every model runs in turn within each round (batch 1: 30 rounds, batch 64:
    7), so load falls on all alike and the ratios to dense can be trusted.
    """
    from ..experiment.analysis import check_budget
    from ..experiment.lock import run_lock
    from ..experiment.retime import retime as retime_points
    from ..experiment.store import DENSE, Store

    check_budget(budget)  # before the stored latencies are replaced, not after
    store = Store.open(run)
    config = store.meta("config") or {}
    store.close()
    runtime = runtime or config.get("runtime") or "torch"
    threads = threads if threads is not None else config.get("threads") or 1
    with run_lock(run, option=None):
        points = retime_points(run, runtime, threads, device)
    dense = next((p for p in points if p.method == DENSE), points[0])
    say(f"latency, median ms ({threads} thread{'s' if threads != 1 else ''}, {runtime}, side by side):")
    width = max(len(p.method) for p in points)
    for p in points:
        say(f"  {p.method:{width}s} {100 * p.target_sparsity:5.1f}% seed {p.seed}  "
            f"b1 {1e3 * p.latency_b1:8.2f} ({dense.latency_b1 / p.latency_b1:.2f}x)  "
            f"b64 {1e3 * p.latency_b64:8.2f} ({dense.latency_b64 / p.latency_b64:.2f}x)")
    if len(points) > 1:  # a report needs a pruned point
        write_report(Path(run), budget)


@cli.command("latency-table")
@click.argument("checkpoint", type=click.Path())
@options(SweepConfig, only=("model", "threads"))
@click.option("--runtime", default="onnxruntime", show_default=True,
              help="What runs the forwards: torch, onnxruntime or onnxruntime-int8 (the target runtime).")
@click.option("--batch", type=int, default=1, show_default=True, help="Images per timed forward.")
@click.option("--input-size", type=int, default=None,
              help="Image height and width [default: the checkpoint's, else its architecture's, else 32].")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Table to write (JSON).")
def latency_table(checkpoint, runtime, batch, input_size, out, **given):
    """Time every conv and linear layer alone in the target runtime, at the widths channel pruning
    could leave it: the prices 'channels-latency' and 'channels-rec-latency' allocate by
    (sweep --latency-table FILE)."""
    cfg = sweep_config(checkpoint, None, {**given, "runtime": runtime})
    start = time.monotonic()
    shown = []  # the bar, made at the first layer: a refused --out is one line, no bar before it

    def on_layer(name, index, layers):
        if not shown:
            shown.append(bar(layers, "latency table", "layer"))
        progress = shown[0]
        progress.total = layers
        progress.set_postfix_str(name, refresh=False)
        progress.update(index - progress.n)

    try:
        table = api.latency_table(cfg, Path(out), batch, input_size, on_layer)
    finally:
        for progress in shown:
            progress.close()
    shapes = len({id(grid) for _, grid in table.layers.values()})
    say(f"timed {len(table.layers)} layers ({shapes} shapes) of {table.model} in {table.runtime}, "
        f"{table.threads} thread(s), batch {table.batch}: {1e3 * table.total():.3f} ms at full width, "
        f"summed; wrote {out} in {time.monotonic() - start:.0f} s")


@cli.command()
@click.argument("run", required=False, type=click.Path(file_okay=False))
@click.option("--checkpoint", type=click.Path(), help="Prune this checkpoint instead of a swept RUN's.")
@click.option("--method", required=True, help="The method, e.g. global, nm-2:4, channels-layerwise, "
                                               "global+ft; 'dense' for none.")
@click.option("--level", type=float, required=True, help="Sparsity level (RUN: one that was swept).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of stochastic methods.")
@click.option("--format", "fmt", required=True, help="sparse, sparse-fp16, structured, onnx, onnx-int8 or "
                                                      "quantized (for a method@<quant>).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="File to write.")
@click.option("--input-size", type=int, default=None,
              help="--checkpoint: image height = width for tracing and ONNX (methods that read no data) "
                   "[default: the checkpoint's, else its architecture's, else 32].")
@options(SweepConfig, skip=("methods", "seeds", "latency", "threads", "runtime", "file_size"))
@options(RecoveryConfig)
@config_option
def export(run, checkpoint, method, level, seed, fmt, out, input_size, config_file, **given):
    """Write a pruned model so its savings are real: compact sparse, structured or ONNX.

    RUN is a sweep's folder; the level must be one it swept (retrained points come from the model
    the sweep kept). Or pass --checkpoint to compute the point from a checkpoint, with the same
    options a sweep takes. The file is reloaded and its outputs compared with the pruned model.
    """
    settings = [k for k, v in given.items() if v is not None] + (["--config"] if config_file else [])
    if run is not None and settings:
        raise PrunelabError(f"--{settings[0].replace('_', '-')} is for --checkpoint; a RUN's points carry "
                            f"the settings they were swept with")
    cfg = sweep_config(checkpoint, config_file, given) if checkpoint is not None else None
    check_destination(out, [config_file])
    done = api.export(Path(run) if run else None, cfg, method, level, seed, fmt, Path(out), input_size)
    say(export_line(done, fmt))


def export_line(done, fmt: str) -> str:
    e, structured = done.exported, done.pruned.structured
    line = f"wrote {e.path} ({fmt}, {e.bytes:,} bytes, measured)"
    if e.floor is not None:
        line += (f"; floor {e.floor.global_:,.0f} bytes (theory: nonzeros x value bits + mask entropy; "
                 f"{e.floor.per_layer:,.0f} with each layer's own statistics), "
                 f"file/floor {e.bytes / e.floor.global_:.2f}")
    if structured is not None:
        line += (f"; removed {100 * structured.achieved:.1f}% of prunable weights "
                 f"(requested {100 * done.level:.1f}%)")
    check = "onnxruntime vs PyTorch" if fmt.startswith("onnx") else "reloaded vs pruned model"
    exact = " (bit-exact)" if e.max_abs_diff == 0 else ""
    line = f"{line}; {check}: max |logit diff| {e.max_abs_diff:.3g}{exact}"
    if done.top1 is not None:
        line += f"; test top-1 of the file {done.top1[0]:.2f}% vs the network {done.top1[1]:.2f}%"
    return line


@cli.command()
@click.argument("file", type=click.Path())
@options(SweepConfig, only=("data", "model", "data_root", "download", "classes_match", "batch_size",
                            "device"))
def evaluate(file, **given):
    """Score a network on a dataset's test images: a checkpoint, or a file export wrote.

    FILE is a checkpoint (folder, safetensors, .pt/.th) or an exported sparse, quantized,
    structured or ONNX file (run by onnxruntime), told apart by its first bytes or its suffix; the
    images are fed as its card says (size, normalisation). The exported network, checked outside
    the sweep that measured it.
    """
    cfg = resolve(SweepConfig, checkpoint=file, **values(SweepConfig, given))
    scored = api.evaluate(Path(file), cfg.data, cfg.model, cfg.data_root, cfg.download, cfg.batch_size,
                          cfg.device, cfg.classes_match)
    say(evaluation_line(scored))


def evaluation_line(scored) -> str:
    ev = scored.evaluation
    low, high = ev.interval()
    return (f"{scored.path} ({scored.kind}, {scored.card.model}): {ev.correct:,} of {ev.n:,} test images "
            f"of {scored.data} right, top-1 {ev.top1:.2f}% (95% CI {low:.1f}-{high:.1f}%), "
            f"loss {ev.loss:.4f}")


# ---------------------------------------------------------------- demo


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Run folder.")
@click.option("--epochs", type=int, default=20, show_default=True, help="Training epochs.")
def demo(out, epochs):
    """Offline, embedded: train a small CNN on scikit-learn's digits, sweep, report."""
    start = time.perf_counter()
    out = Path(out)
    model_dir = out / "model"
    if (model_dir / "model.safetensors").exists():
        say(f"using the model already trained in {model_dir}")
    else:
        data = resolve(SweepConfig, checkpoint="", data="digits")
        recipe = resolve(TrainConfig, epochs=epochs, lr=0.05, batch_size=64)
        card = run_train("smallcnn", data, model_dir, recipe, "cpu")
        say(f"trained smallcnn on digits: {card.top1:.2f}% test top-1")
    cfg = resolve(SweepConfig, checkpoint=str(model_dir), data="digits", seeds=(0, 1, 2), device="cpu")
    echo_answers(run_sweep(cfg, out, budget=1.0))
    write_report(out, 1.0)
    say(f"done in {time.perf_counter() - start:.0f} s")
