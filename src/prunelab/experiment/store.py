"""The results store: one SQLite file per run folder, a row per sweep point, committed as it finishes."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import PrunelabError

STORE_FILE = "results.sqlite"
DENSE = "dense"  # method name of the unpruned baseline row
RETIMED = "retimed"  # meta key: the point keys whose latencies were timed side by side


def level_key(level: float) -> int:
    """Sparsity levels are keyed in parts per million, so 0.1 + 0.2 and 0.3 are one level."""
    return round(level * 1_000_000)


@dataclass(frozen=True)
class Point:
    """One evaluated (method, target sparsity, seed): what `results.csv` has a row for.

    Sparsity is always the fraction of prunable weights that are zero (for channel methods:
    physically removed): `target_sparsity` was asked for, `sparsity` was counted. Accuracies in
    percent, loss in nats, sizes in bytes, times in seconds.

    Savings (None in stores written before they existed, or when not asked for):
        macs: multiply-accumulates per image of the model as it runs, counted (FlopCounterMode).
        effective_macs: theory: macs with each conv/linear scaled by its weight density (what
            a kernel that skipped zeros would do); equals macs for dense and channel methods.
        file_bytes: size of the exported file, measured on disk (`file_format`: "sparse" =
            bitmask + values, compressed; "structured" = safetensors + spec).
        latency_b1, latency_b64: median forward time at batch 1 and 64, measured on the sweep's
            device with `latency_threads` CPU threads, run by `latency_runtime` ('torch' eager, or
            'onnxruntime' on the exported ONNX; None in stores older than the choice: torch).

    Quantized points (methods '<method>@<quantizer><bits>'; None for float weights):
        bits: bits per kept conv/linear weight; quantizer: the scheme ('kmeans', 'uniform').
        Their accuracy, sparsity and `file_bytes` are those of the quantized file read back.
    """

    method: str
    target_sparsity: float
    seed: int
    sparsity: float
    nonzero_params: int
    prunable_params: int
    total_params: int
    correct: int
    n_images: int
    top1: float
    top5: float
    loss: float
    dense_bytes: int
    sparse_bytes: int
    seconds: float
    layers: dict[str, tuple[int, int]]  # prunable weight -> (zeros, size)
    hits: np.ndarray  # bool (n_images,): top-1 right per test image, in data order
    macs: int | None = None
    effective_macs: float | None = None
    file_bytes: int | None = None
    file_format: str | None = None
    latency_b1: float | None = None
    latency_b64: float | None = None
    latency_threads: int | None = None
    latency_runtime: str | None = None
    bits: int | None = None
    quantizer: str | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.method, level_key(self.target_sparsity), self.seed)


CSV_FIELDS = [f.name for f in fields(Point) if f.name not in ("layers", "hits")]
_FIELDS = {f.name for f in fields(Point)}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    method TEXT NOT NULL,
    level_ppm INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    row TEXT NOT NULL,      -- JSON of the scalar fields and per-layer counts
    hits BLOB NOT NULL,     -- np.packbits of the per-image top-1 hits
    created TEXT NOT NULL,
    PRIMARY KEY (method, level_ppm, seed)
);
"""


class Store:
    """Sweep results of one run folder; every `add` is committed before it returns."""

    def __init__(self, folder: Path, conn: sqlite3.Connection):
        self.folder = folder
        self._conn = conn

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, folder: str | os.PathLike, fingerprint: dict, config: dict) -> Store:
        """Open or create the store of `folder` for a configuration.

        Args:
            folder: the run folder (created if missing).
            fingerprint: what fixes the results (model, weights hash, data, pruning options);
                a store written under another fingerprint is refused, never mixed.
            config: the resolved configuration, saved with the results.
        """
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(folder / STORE_FILE, timeout=120)  # processes of one torchrun share it
            conn.executescript(_SCHEMA)
            conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise PrunelabError(f"cannot write the run folder {folder}: {exc}; "
                                f"pass a writable --out") from None
        store = cls(folder, conn)
        old = store.meta("fingerprint")
        if old is not None and old != fingerprint:
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            conn.close()
            raise PrunelabError(
                f"run folder {folder} holds results of a different configuration "
                f"({', '.join(f'{k}: {old.get(k)} -> {fingerprint.get(k)}' for k in diff)}); "
                f"pass a new --out, or the same options to resume")
        with conn:
            store._set("fingerprint", fingerprint)
            store._set("config", config)
            store._set("prunelab_version", __version__)
        return store

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Store:
        """Open an existing store read-only-in-spirit (for reports)."""
        path = Path(folder) / STORE_FILE
        if not path.exists():
            raise PrunelabError(f"{folder} holds no sweep results ({STORE_FILE}); "
                                f"run 'prunelab sweep --out {folder}' first")
        try:
            conn = sqlite3.connect(path)
            conn.execute("SELECT count(*) FROM points").fetchone()
        except sqlite3.Error as exc:
            raise PrunelabError(f"{path} is not a prunelab results store ({exc})") from None
        return cls(Path(folder), conn)

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------ meta

    def _set(self, key: str, value) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def set_meta(self, key: str, value) -> None:
        """Store a JSON value under `key` and commit it."""
        with self._conn:
            self._set(key, value)

    def meta(self, key: str):
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # ------------------------------------------------------------ points

    def keys(self) -> set[tuple[str, int, int]]:
        """(method, level_ppm, seed) of every stored point."""
        return set(self._conn.execute("SELECT method, level_ppm, seed FROM points"))

    def add(self, point: Point) -> None:
        """Store one point and commit it."""
        row = {k: v for k, v in asdict(point).items() if k != "hits"}
        bits = np.packbits(point.hits.astype(bool)).tobytes()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)",
                               (*point.key, json.dumps(row), bits, created))

    def points(self) -> list[Point]:
        """All stored points, ordered by method, level, seed."""
        out = []
        query = "SELECT row, hits FROM points ORDER BY method, level_ppm, seed"
        for row, bits in self._conn.execute(query):
            data = json.loads(row)
            data["layers"] = {k: tuple(v) for k, v in data["layers"].items()}
            data = {k: v for k, v in data.items() if k in _FIELDS}  # rows of newer versions read too
            hits = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=data["n_images"])
            out.append(Point(**data, hits=hits.astype(bool)))
        return out
