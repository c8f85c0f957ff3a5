"""Command line: the only module that parses argv and prints."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from . import __version__, distributed
from .errors import PrunelabError
from .tblog import TensorBoard

DEFAULT_LEVELS = "0:1:0.05"


def say(*args, **kwargs) -> None:
    """Print, once: under torchrun only the first process speaks."""
    if distributed.is_main():
        click.echo(*args, **kwargs)


def _csv(kind):
    def parse(text: str | None):
        if text is None:
            return None
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise PrunelabError(f"'{text}' is not a comma-separated list of {kind.__name__}") from None
    return parse


def data_options(f):
    """--data, --data-root, --download: shared by every command that reads images."""
    f = click.option("--download", is_flag=True,
                     help="Download CIFAR-10 into --data-root if it is missing (needs network).")(f)
    f = click.option("--data-root", type=click.Path(file_okay=False),
                     help="Folder holding cifar-10-batches-py (for --data cifar10).")(f)
    f = click.option("--data", "data", default="digits", show_default=True,
                     help="'digits' (embedded), 'cifar10' (torchvision, with --data-root) or a path "
                          "to a CIFAR-10 .npz (uint8 or JPEG layout).")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="prunelab")
def cli():
    """prunelab: how much of a trained CNN can be pruned before accuracy suffers."""


# ---------------------------------------------------------------- models


@cli.command()
@click.option("--torchvision/--no-torchvision", "with_tv", default=False,
              help="Also list every torchvision classifier.")
def models(with_tv: bool):
    """List the models prunelab can build."""
    from .models import model_info, model_names

    for name in model_names(include_torchvision=with_tv):
        info = model_info(name)
        say(f"{name:28s} classifier={info.classifier:14s} {info.description}")


@cli.command()
def methods():
    """List pruning methods and recoveries; a sweep method is '<method>[+<recovery>]'."""
    from .pruning.methods import METHODS
    from .recovery import RECOVERIES

    say("methods:")
    for m in METHODS.values():
        say(f"  {m.name:12s} {m.description}")
    say("recoveries (append with '+', e.g. global+iter):")
    for r in RECOVERIES.values():
        say(f"  +{r.name:11s} {r.description}")


# ---------------------------------------------------------------- train


def run_train(model_name: str, data_spec: str, data_root, download: bool, out: Path, cfg, device: str,
              quiet: bool = False) -> dict:
    """Train and save a checkpoint with a progress bar; returns the saved metadata."""
    from dataclasses import asdict

    from .checkpoint import CheckpointMeta, save_checkpoint
    from .data import load_dataset
    from .sweep import pick_device
    from .train import fit, input_statistics, new_model

    data = load_dataset(data_spec, data_root, download)
    in_channels = data.train.x.shape[1]
    # A model trained here is normalised with its training data's per-channel statistics,
    # recorded in its metadata; the registry's defaults describe foreign checkpoints.
    mean, std = input_statistics(data)
    model = new_model(model_name, data, cfg)  # the initial weights too come from the recipe's seed
    dev = pick_device(device)
    out.mkdir(parents=True, exist_ok=True)
    steps = cfg.epochs * -(-len(data.train) // cfg.batch_size)
    quiet = quiet or not distributed.is_main()
    bar = tqdm(total=steps, desc=f"train {model_name}", unit="step", disable=quiet, leave=False)
    last = {}

    def on_step(epoch, i, loss):
        bar.update(1)
        if i % 25 == 0:  # reading the loss waits for the device: not every step
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}",
                            test=f"{last.get('test_top1', 0):.1f}%")

    board = TensorBoard(out, enabled=distributed.is_main())

    def on_epoch(record):
        last.update(record)
        board.epoch(record)
        if not quiet:
            tqdm.write(f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  "
                       f"train {record['train_top1']:5.1f}%  test {record['test_top1']:5.2f}%")

    try:
        history = fit(model, data, mean, std, cfg, dev, state_dir=out, distributed_data=True,
                      on_step=on_step, on_epoch=on_epoch)
    finally:
        bar.close()
        board.close()
    meta = CheckpointMeta(model=model_name, num_classes=len(data.classes), in_channels=in_channels,
                          mean=tuple(mean), std=tuple(std), classes=data.classes, data=data.source,
                          epochs=cfg.epochs, top1=history.test_top1, recipe=asdict(cfg))
    if distributed.is_main():
        save_checkpoint(out, model.cpu(), meta)
        (out / "history.json").write_text(json.dumps(history.epochs, indent=2) + "\n")
    return asdict(meta)


@cli.command()
@click.option("--model", "model_name", required=True, help="Registry name, see 'prunelab models'.")
@data_options
@click.option("--epochs", type=int, help="Epochs [default: 30].")
@click.option("--lr", type=float, help="Peak learning rate, cosine-annealed to 0 [default: 0.01].")
@click.option("--momentum", type=float, help="SGD momentum [default: 0.9].")
@click.option("--weight-decay", type=float, help="SGD weight decay [default: 5e-4].")
@click.option("--batch-size", type=int, help="Images per step [default: 128].")
@click.option("--seed", type=int, help="Seed for init, order and augmentation [default: 0].")
@click.option("--augment/--no-augment", default=None, help="Random crop (+flip) [default: on].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML/JSON file of recipe values; options given here override it.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for model.safetensors + model.json (resumes a run left there).")
def train(model_name, data, data_root, download, epochs, lr, momentum, weight_decay, batch_size, seed,
          augment, config_file, device, out):
    """Train a model from scratch and save it (safetensors + JSON metadata)."""
    from .config import resolve
    from .train import TrainConfig

    cfg = resolve(TrainConfig, config_file, epochs=epochs, lr=lr, momentum=momentum,
                  weight_decay=weight_decay, batch_size=batch_size, seed=seed, augment=augment)
    meta = run_train(model_name, data, data_root, download, Path(out), cfg, device)
    say(f"saved {model_name} ({meta['top1']:.2f}% test top-1 after {cfg.epochs} epochs) "
               f"to {Path(out) / 'model.safetensors'}")


# ---------------------------------------------------------------- sweep


def run_sweep(cfg, out: Path, budget: float, quiet: bool = False):
    """Run (or resume) a sweep with a progress bar; returns (points, answers)."""
    from .analysis import answer, split
    from .sweep import Sweep

    sweep = Sweep(cfg, out)
    total = len(sweep.mine(sweep.plan()))
    bar = tqdm(total=total, initial=total - len(sweep.todo), desc="sweep", unit="point",
               disable=quiet or not distributed.is_main(), leave=False)
    board = TensorBoard(out, enabled=distributed.is_main())

    def on_point(p):
        board.point(p)
        bar.update(1)
        bar.set_postfix(method=p.method, level=f"{p.target_sparsity:.2f}", top1=f"{p.top1:.1f}%")

    def on_train_epoch(method, level, seed, record):
        board.epoch(record, prefix=f"retrain/{method}/level{round(1000 * level):04d}/seed{seed}")

    sweep.on_train_epoch = on_train_epoch
    try:
        points = sweep.run(on_point)
    finally:
        bar.close()
        board.close()
        sweep.store.close()
    dense, curves = split(points)
    return points, {m: answer(dense, curves[m], budget) for m in cfg.methods if m in curves}


def answer_line(a, width: int = 0) -> str:
    """One method's answer in one line; the counted share too where it reads differently from the
    swept level (channel methods reach a level only as closely as whole channels allow)."""
    measured = f"{100 * a.measured_sparsity:.1f}%"
    counted = "" if measured == f"{100 * a.sparsity:.1f}%" else f"{measured} counted; "
    return (f"{a.method:{width}s} {100 * a.sparsity:5.1f}% of prunable weights can go "
            f"({counted}95% CI {100 * a.ci_low:.0f}-{100 * a.ci_high:.0f}%): top-1 {a.top1:.2f}% "
            f"vs dense {a.dense_top1:.2f}% (budget {a.budget:g} pt)")


def echo_answers(answers) -> None:
    width = max((len(m) for m in answers), default=0)
    for a in answers.values():
        say(answer_line(a, width))


@cli.command()
@click.argument("checkpoint", type=click.Path())
@data_options
@click.option("--model", "model_name", help="Registry name; needed for plain .th/.pt state dicts.")
@click.option("--train-data", help="Recovery: retrain on this dataset's training images instead of "
                                  "--data's (where --data's file records its images' original "
                                  "positions, its exact pixels replace their copies here).")
@click.option("--methods", help="Comma list of '<method>[+<recovery>]': layerwise, global, random, "
                               "sensitivity, nm-2:4, channels-layerwise, channels-global, each with an "
                               "optional +bn/+ft/+iter/+gradual (see 'prunelab methods') "
                               "[default: layerwise,global,random].")
@click.option("--levels", help="Sparsity levels: 'start:stop:step', 'geometric:P:K' (K rounds removing a "
                              f"fraction P of what is left) or a list [default: {DEFAULT_LEVELS}].")
@click.option("--seeds", help="Comma list of seeds for stochastic methods [default: 0].")
@click.option("--prune-classifier", is_flag=True, default=None,
              help="Also prune the classifier (the classic study's setting).")
@click.option("--layer-cap", type=float, help="global: largest fraction any one layer may lose.")
@click.option("--sensitivity", "sensitivity", type=click.Path(),
              help="Profile for the sensitivity method: a 'prunelab sensitivity' run folder.")
@click.option("--round-to", type=int, help="Channel methods: keep channel counts at multiples of this.")
@click.option("--latency/--no-latency", default=None,
              help="Also measure latency at batch 1 and 64 for every point [default: off].")
@click.option("--threads", type=int, help="CPU threads for --latency [default: 1].")
@click.option("--runtime", type=click.Choice(["torch", "onnxruntime"]),
              help="What runs the --latency forwards: eager PyTorch, or onnxruntime on the exported "
                   "ONNX [default: torch].")
@click.option("--budget", type=float, default=1.0, show_default=True,
              help="Accuracy budget in top-1 points for the answer.")
@click.option("--batch-size", type=int, help="Evaluation batch size [default: 500].")
@click.option("--epochs", type=int, help="Recovery: retraining epochs per level or round [default: 2].")
@click.option("--retrain", type=click.Choice(["finetune", "rewind"]),
              help="Recovery: constant small lr, or replay a cosine schedule [default: finetune].")
@click.option("--lr", type=float, help="Recovery: fine-tuning lr, or the rewound schedule's peak "
                                       "[default: 0.001].")
@click.option("--rewind-epoch", type=int, help="Recovery: epoch of the schedule to rewind to [default: 0].")
@click.option("--train-batch-size", type=int, help="Recovery: images per training step [default: 128].")
@click.option("--bn-batches", type=int, help="Recovery 'bn': batches to re-estimate on [default: 50].")
@click.option("--distill", type=float, help="Recovery: weight (0-1) of distillation from the dense "
                                           "network's outputs during retraining [default: 0].")
@click.option("--temperature", type=float, help="Recovery: distillation temperature [default: 4].")
@click.option("--device", help="auto, cpu or cuda [default: auto].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML/JSON file of sweep values; options given here override it.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder; the same command again resumes what is missing.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write the report when the sweep is done.")
def sweep(checkpoint, data, data_root, download, model_name, train_data, methods, levels, seeds,
          prune_classifier, layer_cap, sensitivity, round_to, latency, threads, runtime, budget, batch_size,
          epochs, retrain, lr, rewind_epoch, train_batch_size, bn_batches, distill, temperature, device,
          config_file, out, report):
    """Prune a trained model at every level with every method, measure, store and answer."""
    from .config import resolve
    from .sweep import SweepConfig, parse_levels

    cfg = resolve(SweepConfig, config_file, checkpoint=checkpoint, data=data, model=model_name,
                  train_data=train_data, data_root=data_root, download=download or None,
                  methods=_csv(str)(methods), levels=parse_levels(levels) if levels else None,
                  seeds=_csv(int)(seeds), prune_classifier=prune_classifier, layer_cap=layer_cap,
                  sensitivity=sensitivity, round_to=round_to, latency=latency, threads=threads,
                  runtime=runtime, batch_size=batch_size, device=device,
                  recovery=dict(epochs=epochs, retrain=retrain, lr=lr, rewind_epoch=rewind_epoch,
                                batch_size=train_batch_size, bn_batches=bn_batches, distill=distill,
                                temperature=temperature))
    _, answers = run_sweep(cfg, Path(out), budget)
    echo_answers(answers)
    if report and distributed.is_main():
        _write_report(Path(out), budget)


# ---------------------------------------------------------------- sensitivity


@cli.command()
@click.argument("checkpoint", type=click.Path())
@data_options
@click.option("--model", "model_name", help="Registry name; needed for plain .th/.pt state dicts.")
@click.option("--levels", default="0.2:1:0.2", show_default=True,
              help="Sparsity levels for each layer alone, 'start:stop:step' or a list.")
@click.option("--prune-classifier", is_flag=True, help="Profile the classifier too.")
@click.option("--batch-size", type=int, default=500, show_default=True, help="Evaluation batch size.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder; the same command again resumes what is missing.")
def sensitivity(checkpoint, data, data_root, download, model_name, levels, prune_classifier, batch_size,
                device, out):
    """Prune each layer alone across levels: a curve per layer, and a profile for the
    'sensitivity' method (sweep --methods sensitivity --sensitivity RUN)."""
    from . import sensitivity as sens
    from .sweep import Sweep, SweepConfig, parse_levels

    cfg = SweepConfig(checkpoint=checkpoint, data=data, model=model_name, data_root=data_root,
                      download=download, methods=(), levels=parse_levels(levels),
                      prune_classifier=prune_classifier, batch_size=batch_size, device=device)
    run = Sweep(cfg, out)
    todo = sens.plan(run)
    bar = tqdm(total=len(todo), desc="sensitivity", unit="point", leave=False)

    def on_point(p):
        bar.update(1)
        bar.set_postfix(layer=p.method.removeprefix(sens.PREFIX), level=f"{p.target_sparsity:.2f}",
                        top1=f"{p.top1:.1f}%")

    try:
        profile = sens.run(run, on_point)
    finally:
        bar.close()
        run.store.close()
    files = sens.plot(profile, out)
    mean_top1 = {n: sum(acc for _, acc in curve) / len(curve) for n, curve in profile["layers"].items()}
    ranked = sorted(mean_top1, key=mean_top1.get)
    say("most sensitive (lowest mean top-1 over the levels): "
               + ", ".join(f"{n} ({mean_top1[n]:.1f}%)" for n in ranked[:3]))
    say(f"profile: {Path(out) / 'sensitivity.json'}; plot: {files[0]}")


# ---------------------------------------------------------------- report


def _write_report(run: Path, budget: float, gif: bool = True):
    from .report import write_report
    from .results import Store

    rep = write_report(run, budget=budget, gif=gif)
    store = Store.open(run)
    board = TensorBoard(run)
    board.curve(rep.files["plot_png"], store.points())
    board.close()
    store.close()
    say(f"report: {rep.files['markdown']}")
    return rep


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--budget", type=float, default=1.0, show_default=True,
              help="Accuracy budget in top-1 points for the answer.")
@click.option("--gif/--no-gif", default=True, show_default=True, help="Write the pruning animation.")
def report(run, budget, gif):
    """Write results.csv, report.md, plots and the animation from a run's stored results."""
    rep = _write_report(Path(run), budget, gif)
    echo_answers(rep.answers)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--runtime", type=click.Choice(["torch", "onnxruntime"]),
              help="What runs the forwards [default: the sweep's, else torch].")
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
    from .results import Store
    from .sweep import retime as retime_points

    store = Store.open(run)
    config = store.meta("config") or {}
    store.close()
    runtime = runtime or config.get("runtime") or "torch"
    threads = threads if threads is not None else config.get("threads") or 1
    points = retime_points(run, runtime, threads, device)
    dense = next((p for p in points if p.method == "dense"), points[0])
    say(f"latency, median ms ({threads} thread{'s' if threads != 1 else ''}, {runtime}, side by side):")
    width = max(len(p.method) for p in points)
    for p in points:
        say(f"  {p.method:{width}s} {100 * p.target_sparsity:5.1f}% seed {p.seed}  "
            f"b1 {1e3 * p.latency_b1:8.2f} ({dense.latency_b1 / p.latency_b1:.2f}x)  "
            f"b64 {1e3 * p.latency_b64:8.2f} ({dense.latency_b64 / p.latency_b64:.2f}x)")
    if len(points) > 1:  # a report needs a pruned point
        _write_report(Path(run), budget)


# ---------------------------------------------------------------- export


@cli.command()
@click.argument("run", required=False, type=click.Path(file_okay=False))
@click.option("--checkpoint", type=click.Path(), help="Prune this checkpoint instead of a swept RUN's.")
@click.option("--model", "model_name", help="Registry name; needed for plain .th/.pt state dicts.")
@click.option("--method", required=True, help="The method, e.g. global, nm-2:4, channels-layerwise, "
                                               "global+iter (RUN only); 'dense' for none.")
@click.option("--level", type=float, required=True, help="Sparsity level (RUN: one that was swept).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of stochastic methods.")
@click.option("--format", "fmt", required=True, help="sparse, sparse-fp16, structured or onnx.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="File to write.")
@click.option("--input-size", type=int, default=32, show_default=True,
              help="--checkpoint: image height = width for tracing and ONNX.")
@click.option("--layer-cap", type=float, help="--checkpoint: largest fraction one layer may lose.")
@click.option("--round-to", type=int, help="--checkpoint, channel methods: channel multiples.")
def export(run, checkpoint, model_name, method, level, seed, fmt, out, input_size, layer_cap, round_to):
    """Write a pruned model so its savings are real: compact sparse, structured or ONNX.

    RUN is a sweep's folder; the level must be one it swept (retrained points, e.g. global+iter,
    come from the model the sweep kept). Or pass --checkpoint to prune a checkpoint directly
    (one-shot methods). The file is reloaded and its outputs compared with the pruned model.
    """
    import torch

    from .checkpoint import load_checkpoint
    from .export import ModelRef, check_format, export_model
    from .models import model_info
    from .pruning.masks import check_sparsity
    from .pruning.methods import CHANNELS
    from .recovery import parse_method
    from .results import DENSE
    from .sweep import point_model, prune_model

    if (run is None) == (checkpoint is None):
        raise PrunelabError("pass either a RUN folder or --checkpoint, not both or neither")
    kind, recovery = parse_method(method) if method != DENSE else (None, None)
    channels = kind is not None and kind.kind == CHANNELS
    if checkpoint is not None and recovery is not None and recovery.name != "none":
        raise PrunelabError(f"'{method}' points are retrained in a sweep; export them from its "
                            f"run folder (prunelab export RUN --method {method} ...)")
    check_format(fmt, channels)
    check_sparsity(level, "--level")
    if run is not None:
        pruned, info, ref, shape = point_model(run, method, level, seed)
    else:
        model, meta = load_checkpoint(checkpoint, model_name)
        info = model_info(meta.model)
        shape = (meta.in_channels, input_size, input_size)
        pruned = prune_model(model, info, method, level, seed, torch.zeros((1, *shape)),
                             layer_cap=layer_cap, round_to=round_to)
        ref = ModelRef.of(meta)
    done = export_model(pruned.model, info, ref, fmt, out, shape, channels)
    line = f"wrote {done.path} ({fmt}, {done.bytes:,} bytes, measured)"
    if done.floor is not None:
        line += (f"; floor {done.floor.global_:,.0f} bytes (theory: nonzeros x value bits + mask entropy), "
                 f"file/floor {done.bytes / done.floor.global_:.2f}")
    if pruned.structured is not None:
        line += (f"; removed {100 * pruned.structured.achieved:.1f}% of prunable weights "
                 f"(requested {100 * level:.1f}%)")
    check = "onnxruntime vs PyTorch" if fmt == "onnx" else "reloaded vs pruned model"
    exact = " (bit-exact)" if done.max_abs_diff == 0 else ""
    click.echo(f"{line}; {check}: max |logit diff| {done.max_abs_diff:.3g}{exact}")


# ---------------------------------------------------------------- demo


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Run folder.")
@click.option("--epochs", type=int, default=20, show_default=True, help="Training epochs.")
def demo(out, epochs):
    """Offline, embedded: train a small CNN on scikit-learn's digits, sweep, report."""
    from .config import resolve
    from .sweep import SweepConfig
    from .train import TrainConfig

    start = time.perf_counter()
    out = Path(out)
    model_dir = out / "model"
    if (model_dir / "model.safetensors").exists():
        say(f"using the model already trained in {model_dir}")
    else:
        cfg = resolve(TrainConfig, epochs=epochs, lr=0.05, batch_size=64)
        meta = run_train("smallcnn", "digits", None, False, model_dir, cfg, "cpu")
        say(f"trained smallcnn on digits: {meta['top1']:.2f}% test top-1")
    cfg = resolve(SweepConfig, checkpoint=str(model_dir), data="digits", seeds=(0, 1, 2), device="cpu")
    _, answers = run_sweep(cfg, out, budget=1.0)
    echo_answers(answers)
    _write_report(out, 1.0)
    say(f"done in {time.perf_counter() - start:.0f} s")


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        distributed.init_from_env()
        cli.main(standalone_mode=False)
    except PrunelabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted; results stored so far are kept, the same command resumes", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted; results stored so far are kept, the same command resumes", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
