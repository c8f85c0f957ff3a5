"""What the command line shows: one-process printing, progress bars, answer lines, the report."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from .. import distributed
from .tensorboard import TensorBoard


def say(*args, **kwargs) -> None:
    """Print, once: under torchrun only the first process speaks."""
    if distributed.is_main():
        click.echo(*args, **kwargs)


PLAIN_EVERY_S = 10.0  # a log (stderr not a terminal) gets one progress line this often at most


def bar(total: int, desc: str, unit: str, initial: int = 0, quiet: bool = False, stream=None) -> tqdm:
    """A tqdm bar on a terminal; where stderr is a file or a pipe, a plain line every few seconds
    (and the last state), not hundreds of carriage-return redraws."""
    stream = stream or sys.stderr
    disable = quiet or not distributed.is_main()
    if stream.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=stream,
                    disable=disable)
    return _PlainBar(total=total, initial=initial, desc=desc, unit=unit, leave=True, file=_Lines(stream),
                     disable=disable, ascii=True, ncols=160, mininterval=PLAIN_EVERY_S, maxinterval=1e9)


def start_at(progress: tqdm, n: int) -> None:
    """A resumed job's bar starts at its step `n`: its count, its rate and its next line from here
    on. (Updating by `n` at once instead would make tqdm wait for another `n` steps per line.)"""
    progress.initial = progress.n = n
    if not progress.disable:  # a quiet bar (another process of a torchrun, --quiet) has no clock
        progress.last_print_n = n
        progress.last_print_t = progress.start_t = progress._time()


def show_now(progress: tqdm, **details) -> None:
    """Put `details` on the bar at once: for events minutes apart (a retraining epoch), each of
    which then gets its own line in a log."""
    progress.set_postfix(details)  # in the order given
    progress.refresh()


class _PlainBar(tqdm):
    """Its details change without forcing a line of their own; they show in the next timed one."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


class _Lines:
    """What a log sees of a bar: each redraw as one plain line; the blank erasing ones dropped."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.replace("\r", "\n").split("\n"):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def answer_line(a, width: int = 0) -> str:
    """One method's answer in one line; the counted share too where it reads differently from the
    swept level (channel methods reach a level only as closely as whole channels allow)."""
    if not a.found:
        return (f"{a.method:{width}s} no level keeps top-1 within {a.budget:g} pt of dense "
                f"{a.dense_top1:.2f}% (not even its lowest)")
    measured = f"{100 * a.measured_sparsity:.1f}%"
    counted = "" if measured == f"{100 * a.sparsity:.1f}%" else f"{measured} counted; "
    return (f"{a.method:{width}s} {100 * a.sparsity:5.1f}% of prunable weights can go "
            f"({counted}95% CI {100 * a.ci_low:.0f}-{100 * a.ci_high:.0f}%): top-1 {a.top1:.2f}% "
            f"vs dense {a.dense_top1:.2f}% (budget {a.budget:g} pt)")


def echo_answers(answers) -> None:
    width = max((len(m) for m in answers), default=0)
    for a in answers.values():
        say(answer_line(a, width))


def write_report(run: Path, budget: float, gif: bool = True):
    """The report of a run, its curve in TensorBoard too; says where it is."""
    from ..experiment.store import Store
    from ..report import write_report as write

    rep = write(run, budget=budget, gif=gif)
    store = Store.open(run)
    points = store.points()
    board = TensorBoard(run)
    board.curve(rep.files["plot_png"], points)
    board.close()
    store.close()
    line = smallest_file_line(points, budget)
    if line:
        say(line)
    say(f"report: {rep.files['markdown']} (and {rep.files['html'].name} for a browser)")
    return rep


def smallest_file_line(points, budget: float) -> str | None:
    """The smallest measured file within the budget, in one line (None if no file was measured)."""
    from ..experiment.analysis import sized, smallest_within, split

    items = sized(points)
    if not items:
        return None
    dense, _ = split(points)
    best = smallest_within(items, dense.top1, budget)
    if best is None:
        return (f"smallest file: none of the {len(items)} measured files keeps top-1 within {budget:g} pt "
                f"of dense")
    return (f"smallest file within {budget:g} pt: {best.method} at {100 * best.level:.1f}%, "
            f"{best.file_bytes:,.0f} bytes ({dense.dense_bytes / best.file_bytes:.1f}x smaller than the "
            f"dense float32 tensors, {dense.dense_bytes:,} bytes), top-1 {best.top1:.2f}% vs dense "
            f"{dense.top1:.2f}%")
