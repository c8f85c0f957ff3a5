"""Reports from the results store alone: CSV, Markdown and HTML summaries, plots, per-layer table, GIF."""

from __future__ import annotations

import csv
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import PrunelabError
from ..experiment.analysis import Answer
from ..experiment.lock import report_lock
from ..experiment.store import CSV_FIELDS, Point
from .gif import write_gif
from .html import html_page
from .markdown import markdown
from .plots import has_files, has_savings, write_memory_plot, write_plot, write_savings_plot
from .read import RunView, read_run

CSV_FILE = "results.csv"
MARKDOWN_FILE = "report.md"
PLOT_FILE = "accuracy_vs_sparsity"  # .png and .svg
SAVINGS_FILE = "accuracy_vs_savings"  # .png and .svg, when the points carry savings
MEMORY_FILE = "accuracy_vs_bytes"  # .png and .svg, when some points have a measured file
GIF_FILE = "pruning.gif"
HTML_FILE = "report.html"  # report.md's content on one self-contained page
REPORT_FILES = frozenset({CSV_FILE, MARKDOWN_FILE, HTML_FILE, GIF_FILE, *(
    f"{stem}.{ext}" for stem in (PLOT_FILE, SAVINGS_FILE, MEMORY_FILE) for ext in ("png", "svg"))})


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote.

    Attributes:
        folder: where the files are.
        files: "csv", "markdown", "html", "plot_png", "plot_svg", (unless skipped) "gif", when the
            points carry savings "savings_png", "savings_svg", when some have a measured file
            "memory_png", "memory_svg" -> path.
        answers: method -> its answer (largest sparsity within the budget, with bootstrap interval).
    """

    folder: Path
    files: dict[str, Path]
    answers: dict[str, Answer]


def write_report(run: str | os.PathLike, budget: float = 1.0, n_boot: int = 2000,
                 out: str | os.PathLike | None = None, gif: bool = True) -> Report:
    """Write the report of a run folder from its results store only (no model, no data).

    The whole report is written into a temporary sibling folder and swapped in at the end, so an
    error or an interrupt leaves the previous report as it was, never half of each.

    Args:
        run: the run folder holding `results.sqlite`.
        budget: allowed top-1 drop below dense, in percentage points (>= 0).
        n_boot: bootstrap replicates over the test images for each answer's 95% interval (>= 0).
        out: folder to write into (replaced whole); default `run/report/`.
        gif: also write the animation (the slowest file, a few seconds).

    Returns:
        The folder, the files written by kind, and each method's answer.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise PrunelabError(f"the number of bootstrap replicates must be an integer >= 0, got {n_boot!r}")
    run = Path(run)
    folder = Path(out) if out is not None else run / "report"
    check_replaceable(folder)
    data = read_run(run, budget, n_boot)  # a run that cannot be reported is one line before any lock
    with report_lock(folder):
        return _write(run, data, folder, gif)


def _write(run: Path, data: RunView, folder: Path, gif: bool) -> Report:
    """The report of `data` into a temporary sibling of `folder`, swapped in whole."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        for kind in ("tmp", "old"):  # left by a report killed mid-way
            for stale in folder.parent.glob(f".{folder.name}.{kind}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = sibling(folder, "tmp")
        tmp.mkdir()  # as a plain mkdir would make it (the umask's mode, unlike mkdtemp's 0700)
    except OSError as exc:
        raise PrunelabError(f"cannot write the report folder {folder}: {exc}; make {folder.parent} "
                            f"writable (or report a writable copy of the run)") from None
    try:
        files = write_files(tmp, data, run, gif)
        swap(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise PrunelabError(f"cannot write the report in {folder}: {exc}; the previous report, if any, "
                                f"is left as it was") from exc
        raise
    return Report(folder, {kind: folder / path.name for kind, path in files.items()}, data.answers)


def write_files(folder: Path, data: RunView, run: Path, gif: bool) -> dict[str, Path]:
    """Every file of the report into `folder`; returns kind -> path."""
    budget = next(iter(data.answers.values())).budget
    files = {"csv": folder / CSV_FILE, "markdown": folder / MARKDOWN_FILE, "html": folder / HTML_FILE,
             "plot_png": folder / f"{PLOT_FILE}.png", "plot_svg": folder / f"{PLOT_FILE}.svg"}
    if gif:
        files["gif"] = folder / GIF_FILE
    write_csv(files["csv"], data.points)
    write_plot(files["plot_png"], files["plot_svg"], data)
    if has_savings(data):
        files["savings_png"] = folder / f"{SAVINGS_FILE}.png"
        files["savings_svg"] = folder / f"{SAVINGS_FILE}.svg"
        write_savings_plot(files["savings_png"], files["savings_svg"], data)
    if has_files(data):
        files["memory_png"] = folder / f"{MEMORY_FILE}.png"
        files["memory_svg"] = folder / f"{MEMORY_FILE}.svg"
        write_memory_plot(files["memory_png"], files["memory_svg"], data, budget)
    if gif:
        write_gif(files["gif"], data)
    files["markdown"].write_text(markdown(data, files), encoding="utf-8")
    files["html"].write_text(html_page(data, files, run), encoding="utf-8")
    return files


def check_replaceable(folder: Path) -> None:
    """The report replaces its folder whole: refuse one holding anything a report does not write."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise PrunelabError(f"cannot write the report folder {folder}: it is a file; pass another --out")
    other = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_FILES)
    if other:
        raise PrunelabError(f"{folder} holds files a report does not write ({', '.join(other[:5])}); the "
                            f"report replaces its folder whole: pass an empty or report folder as --out")


def sibling(folder: Path, kind: str) -> Path:
    """A fresh hidden name beside `folder`: RUN/.report.tmp-1a2b3c4d."""
    return folder.parent / f".{folder.name}.{kind}-{secrets.token_hex(4)}"


def swap(new: Path, folder: Path) -> None:
    """Put `new` in the place of `folder`: the old one renamed away, the new one in, the old removed."""
    if not folder.exists():
        new.rename(folder)
        return
    old = sibling(folder, "old")
    folder.rename(old)
    try:
        new.rename(folder)
    except BaseException:
        old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_csv(path: Path, points: list[Point]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for p in points:
            writer.writerow(["" if getattr(p, name) is None else getattr(p, name) for name in CSV_FIELDS])
