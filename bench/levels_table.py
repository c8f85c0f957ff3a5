"""Top-1 at every level of a run, one column per method, as the Markdown table docs/RESULTS.md shows:
read from the run's results.csv (written by `prunelab report RUN`). A method with several seeds
gives its mean ± the standard deviation over them; one seed gives the count of images right too.

    python bench/levels_table.py runs/r50/magnitude [--methods global,lamp,random]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def read_points(run: Path) -> dict[str, dict[float, list[tuple[int, int]]]]:
    """method -> target sparsity -> [(correct, n_images) per seed], from RUN/report/results.csv."""
    points: dict[str, dict[float, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    with open(run / "report" / "results.csv", newline="") as f:
        for row in csv.DictReader(f):
            points[row["method"]][float(row["target_sparsity"])].append((int(row["correct"]),
                                                                         int(row["n_images"])))
    return points


def cell(seeds: list[tuple[int, int]]) -> str:
    top1 = [100 * c / n for c, n in seeds]
    if len(top1) == 1:
        return f"{top1[0]:.2f} ({seeds[0][0]})"
    return f"{statistics.mean(top1):.2f} ± {statistics.stdev(top1):.2f}"


def table(points: dict[str, dict[float, list[tuple[int, int]]]], methods: list[str]) -> str:
    levels = sorted({lv for m in methods for lv in points[m]})
    lines = ["| target sparsity | " + " | ".join(f"`{m}`" for m in methods) + " |",
             "|---:|" + "---:|" * len(methods)]
    for lv in levels:
        cells = [cell(points[m][lv]) if lv in points[m] else "–" for m in methods]
        lines.append(f"| {100 * lv:g}% | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--methods", help="comma-separated, in this order (default: every method but dense)")
    args = ap.parse_args()
    points = read_points(args.run)
    methods = args.methods.split(",") if args.methods else [m for m in points if m != "dense"]
    missing = [m for m in methods if m not in points]
    if missing:
        has = ", ".join(points)
        print(f"error: {args.run} has no points of {', '.join(missing)}; it has {has}", file=sys.stderr)
        sys.exit(2)
    print(table(points, methods))


if __name__ == "__main__":
    main()
