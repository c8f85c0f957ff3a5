"""The run folder's layout: every file name of a run comes from here; its small files written whole."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..io.atomic import write_whole
from ..recovery import PointFiles
from .failures import os_failure
from .spec import MethodSpec
from .store import STORE_FILE, level_key

CONFIG_FILE = "config.json"
REPORT_DIR = "report"
PROFILE_FILE = "sensitivity.json"
LATENCY_TABLE_FILE = "latency-table.json"  # a sweep's copy of its --latency-table
FORMAT_SUFFIX = {"sparse": "sparse", "structured": "safetensors", "quantized": "quantized"}


class RunFolder:
    """RUN/results.sqlite, config.json, models/ (kept models), partial/ (training states of points
    in flight), chains/ (mask chains' states), report/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def store(self) -> Path:
        return self.root / STORE_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def latency_table(self) -> Path:
        return self.root / LATENCY_TABLE_FILE

    @staticmethod
    def slug(method: MethodSpec) -> str:
        """A method's folder name: 'global_iter' for global+iter (as since the first prunelab)."""
        return method.text.replace("+", "_")

    def point_file(self, method: MethodSpec, level: float, seed: int, file_format: str) -> Path:
        """A kept model: RUN/models/<slug>-seed<k>/<ppm>.<sparse|safetensors>."""
        return (self.root / "models" / f"{self.slug(method)}-seed{seed}"
                / f"{level_key(level):07d}.{FORMAT_SUFFIX[file_format]}")

    def partial_dir(self, method: MethodSpec, level: float, seed: int) -> Path:
        """A point being retrained keeps its training state here after every epoch, until stored."""
        return self.root / "partial" / f"{self.slug(method)}-seed{seed}" / f"{level_key(level):07d}"

    def drop_partial(self, method: MethodSpec, level: float, seed: int) -> None:
        """Forget a stored point's training state, and the folders above it that it leaves empty."""
        folder = self.partial_dir(method, level, seed)
        shutil.rmtree(folder, ignore_errors=True)
        for parent in (folder.parent, folder.parent.parent):
            try:
                parent.rmdir()  # only an empty folder goes
            except OSError:
                break

    def chain_state(self, method: MethodSpec, seed: int, level: float) -> Path:
        """A mask chain's retrained state (weights and masks) at one level."""
        folder = self.root / "chains" / f"{self.slug(method)}-seed{seed}"
        return folder / f"{level_key(level):07d}.safetensors"

    def files(self, method: MethodSpec, level: float, seed: int) -> PointFiles:
        """Where the point (method, level, seed) keeps what a recovery writes."""
        return PointFiles(partial=self.partial_dir(method, level, seed),
                          chain=lambda lv: self.chain_state(method, seed, lv),
                          kept=lambda lv, fmt: self.point_file(method, lv, seed, fmt))


def write_text(path: Path, text: str) -> None:
    """Write a run file whole or not at all: a temporary file beside it, synced, then renamed over
    it; a failed write (a full disk) removes the temporary and is one line."""
    try:
        write_whole(path, text.encode(), path.with_name(f".{path.name}.tmp"))
    except OSError as exc:
        raise os_failure(exc, path) from None
