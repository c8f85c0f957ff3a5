"""Reports from the results store alone: CSV, Markdown summary, plots, per-layer table, GIF."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import PrunelabError
from ..experiment.analysis import Answer
from ..experiment.store import CSV_FIELDS, Point
from .gif import write_gif
from .markdown import markdown
from .plots import has_files, has_savings, write_memory_plot, write_plot, write_savings_plot
from .read import read_run

CSV_FILE = "results.csv"
MARKDOWN_FILE = "report.md"
PLOT_FILE = "accuracy_vs_sparsity"  # .png and .svg
SAVINGS_FILE = "accuracy_vs_savings"  # .png and .svg, when the points carry savings
MEMORY_FILE = "accuracy_vs_bytes"  # .png and .svg, when some points have a measured file
GIF_FILE = "pruning.gif"


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote.

    Attributes:
        folder: where the files are.
        files: "csv", "markdown", "plot_png", "plot_svg", (unless skipped) "gif", and when the
            points carry savings "savings_png", "savings_svg" -> path.
        answers: method -> its answer (largest sparsity within the budget, with bootstrap interval).
    """

    folder: Path
    files: dict[str, Path]
    answers: dict[str, Answer]


def write_report(run: str | os.PathLike, budget: float = 1.0, n_boot: int = 2000,
                 out: str | os.PathLike | None = None, gif: bool = True) -> Report:
    """Write the report of a run folder from its results store only (no model, no data).

    Args:
        run: the run folder holding `results.sqlite`.
        budget: allowed top-1 drop below dense, in percentage points (>= 0).
        n_boot: bootstrap replicates over the test images for each answer's 95% interval (>= 0).
        out: folder to write into; default `run/report/`.
        gif: also write the animation (the slowest file, a few seconds).

    Returns:
        The folder, the files written by kind, and each method's answer.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise PrunelabError(f"the number of bootstrap replicates must be an integer >= 0, got {n_boot!r}")
    run = Path(run)
    data = read_run(run, budget, n_boot)
    folder = Path(out) if out is not None else run / "report"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrunelabError(f"cannot write the report folder {folder}: {exc}; "
                            f"pass a writable --out") from None

    files = {"csv": folder / CSV_FILE, "markdown": folder / MARKDOWN_FILE,
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
    return Report(folder, files, data.answers)


def write_csv(path: Path, points: list[Point]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for p in points:
            writer.writerow(["" if getattr(p, name) is None else getattr(p, name) for name in CSV_FIELDS])
