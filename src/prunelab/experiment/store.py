"""The results store: one SQLite file per run folder, a row per sweep point, committed as it finishes."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import PrunelabError
from ..io.checkpoint import META_FILE
from .failures import disk_not_file, os_failure

STORE_FILE = "results.sqlite"
DENSE = "dense"  # method name of the unpruned baseline row
RETIMED = "retimed"  # meta key: the point keys whose latencies were timed side by side
KIND = "kind"  # meta key: what kind of run the folder holds, SWEEP or SENSITIVITY
SWEEP, SENSITIVITY = "sweep", "sensitivity"
LAYER_PREFIX = "layer:"  # method name of a sensitivity run's one-layer point: "layer:<parameter name>"

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


Legacy = Callable[[dict, set[str]], tuple[dict, dict[str, dict]]]
RECIPES = "recipes"


def changes(old: dict, new: dict, prefix: str = "") -> str:
    """What differs between two settings dicts, one level of nesting spelled out: 'epochs: 3 -> 1,
    recovery.lr: 0.01 -> 0.001' ('unset' where a side lacks it)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, "unset"), new.get(key, "unset")
        if isinstance(a, dict) and isinstance(b, dict) and not prefix:
            out.append(changes(a, b, f"{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return ", ".join(o for o in out if o)


class Store:
    """Sweep results of one run folder; every `add` is committed before it returns."""

    def __init__(self, folder: Path, conn: sqlite3.Connection):
        self.folder = folder
        self._conn = conn

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, folder: str | os.PathLike, fingerprint: dict, config: dict, kind: str = SWEEP,
               recipes: dict[str, dict] | None = None, legacy: Legacy | None = None) -> Store:
        """Open or create the store of `folder` for a configuration.

        Args:
            folder: the run folder (created if missing).
            fingerprint: what fixes every point's results (model, weights hash, data, pruning
                options); a store written under another fingerprint is refused, never mixed.
            config: the resolved configuration, saved with the results.
            kind: SWEEP or SENSITIVITY; a folder holding the other kind is refused, never mixed.
            recipes: by method, the settings its points read beyond the fingerprint (its
                retraining, its calibration): a method joins a run under its own recipe, but the
                recipe of a method with stored points cannot change.
            legacy: reads a fingerprint from before recipes as (fingerprint, recipes of the
                given stored methods).
        """
        folder = Path(folder)
        path = folder / STORE_FILE
        fresh = not path.exists()
        try:
            store = cls._create(folder, fingerprint, config, kind, recipes or {}, legacy)
        except BaseException:
            if fresh:  # a store this call began and could not finish (a full disk) would read as corrupt
                for suffix in ("", "-wal", "-shm"):
                    path.with_name(path.name + suffix).unlink(missing_ok=True)
            raise
        return store

    @classmethod
    def _create(cls, folder: Path, fingerprint: dict, config: dict, kind: str, recipes: dict,
                legacy: Legacy | None) -> Store:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(folder / STORE_FILE, timeout=120)  # processes of one torchrun share it
        except (OSError, sqlite3.Error) as exc:
            raise PrunelabError(f"cannot write the run folder {folder}: {exc}; "
                                f"pass a writable --out") from None
        store = cls(folder, conn)
        try:
            try:
                conn.executescript(_SCHEMA)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                if disk_not_file(exc):
                    raise os_failure(exc, store.path) from None
                raise PrunelabError(f"{store.path} is not a prunelab results store ({exc}); "
                                    f"pass another --out") from None
            store._check_kind(kind)
            held = store._check_identity(fingerprint, recipes, legacy)
            try:
                with conn:
                    store._set("fingerprint", fingerprint)
                    store._set(RECIPES, {**held, **recipes})
                    store._set("config", config)
                    store._set("prunelab_version", __version__)
                    store._set(KIND, kind)
            except sqlite3.Error as exc:
                raise os_failure(exc, store.path) from None
        except BaseException:
            conn.close()
            raise
        return store

    def recipes(self, legacy: Legacy | None = None) -> dict[str, dict]:
        """The recipe of every method with stored points (read by `legacy` from a store older than
        recipes; {} without it)."""
        stored = self.meta(RECIPES)
        if stored is None:
            old = self.meta("fingerprint")
            return legacy(old, self.methods())[1] if old is not None and legacy else {}
        return stored

    def methods(self) -> set[str]:
        """The methods with stored points."""
        return {m for m, _, _ in self.keys()}

    def _check_identity(self, fingerprint: dict, recipes: dict, legacy: Legacy | None) -> dict:
        """The recipes of the stored methods, once the run's fingerprint and the recipes of the
        methods it holds are found the same as asked (else one line, nothing changed)."""
        old = self.meta("fingerprint")
        if old is None:
            return {}
        held = self.methods()
        stored = self.meta(RECIPES)
        if stored is None and legacy is not None:
            old, stored = legacy(old, held)
        if old != fingerprint:
            raise PrunelabError(f"run folder {self.folder} holds results of a different configuration "
                                f"({changes(old, fingerprint)}); pass a new --out, or the same options "
                                f"to resume")
        stored = {m: r for m, r in (stored or {}).items() if m in held}
        for method in sorted(stored.keys() & recipes.keys()):
            if stored[method] != recipes[method]:
                raise PrunelabError(
                    f"run folder {self.folder} holds '{method}' points made with another recipe "
                    f"({changes(stored[method], recipes[method])}); pass those settings to resume it, "
                    f"or sweep this recipe into a new --out")
        return stored

    def kind(self) -> str | None:
        """SWEEP or SENSITIVITY as recorded; for a store older than the record, read from its points
        (one-layer points: a sensitivity run; others: a sweep); None while it holds dense alone."""
        recorded = self.meta(KIND)
        if recorded is not None:
            return recorded
        methods = self.methods() - {DENSE}
        if not methods:
            return None
        return SENSITIVITY if any(str(m).startswith(LAYER_PREFIX) for m in methods) else SWEEP

    def _check_kind(self, kind: str) -> None:
        held = self.kind()
        if held is None or held == kind:
            return
        holds = ("a sensitivity run (one-layer points 'layer:...')" if held == SENSITIVITY
                 else f"a {held} run")
        command = "sensitivity CHECKPOINT" if kind == SENSITIVITY else "sweep CHECKPOINT"
        raise PrunelabError(f"run folder {self.folder} holds {holds}; a {kind} needs a folder of its own: "
                            f"pass another --out to 'prunelab {command}' (nothing was changed)")

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Store:
        """Open an existing store read-only-in-spirit (for reports)."""
        path = Path(folder) / STORE_FILE
        none = PrunelabError(f"{folder} holds no sweep results ({STORE_FILE}); "
                             f"run 'prunelab sweep --out {folder}' first")
        if (Path(folder) / META_FILE).is_file():  # a checkpoint: its run goes into a folder of its own
            none = PrunelabError(f"{folder} is a checkpoint folder, not a run folder; sweep it into a "
                                 f"folder of its own ('prunelab sweep {folder} --out RUN') and pass RUN")
        if not path.exists():
            raise none
        try:
            conn = sqlite3.connect(path)
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                conn.close()  # an empty database: a sweep that stopped before its first write
                raise none
            conn.execute("SELECT count(*) FROM points").fetchone()
        except sqlite3.Error as exc:
            if disk_not_file(exc):
                raise os_failure(exc, path, "read") from None  # the disk, not the file
            raise PrunelabError(f"{path} is not a prunelab results store ({exc})") from None
        return cls(Path(folder), conn)

    @property
    def path(self) -> Path:
        return self.folder / STORE_FILE

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------ meta

    def _set(self, key: str, value) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def set_meta(self, key: str, value) -> None:
        """Store a JSON value under `key` and commit it."""
        try:
            with self._conn:
                self._set(key, value)
        except sqlite3.Error as exc:
            raise os_failure(exc, self.path) from None

    def _unreadable(self, exc: sqlite3.Error) -> PrunelabError:
        """One line for a failed read: the disk's fault (full, unreadable), or a damaged store."""
        if disk_not_file(exc):
            return os_failure(exc, self.path, "read")
        return PrunelabError(f"{self.path} is not a prunelab results store, or a damaged one ({exc})")

    def meta(self, key: str):
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except (TypeError, ValueError) as exc:
            raise PrunelabError(f"{self.path}: its '{key}' entry (table meta) is not valid JSON ({exc}); "
                                f"the store is damaged: sweep again into a new --out") from None

    # ------------------------------------------------------------ points

    def keys(self) -> set[tuple[str, int, int]]:
        """(method, level_ppm, seed) of every stored point."""
        try:
            return set(self._conn.execute("SELECT method, level_ppm, seed FROM points"))
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None

    def add(self, point: Point) -> None:
        """Store one point and commit it."""
        row = {k: v for k, v in asdict(point).items() if k != "hits"}
        bits = np.packbits(point.hits.astype(bool)).tobytes()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self._conn:  # one transaction: a failed insert leaves the store as it was
                self._conn.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)",
                                   (*point.key, json.dumps(row), bits, created))
        except sqlite3.Error as exc:
            raise os_failure(exc, self.path) from None

    def points(self) -> list[Point]:
        """All stored points, ordered by method, level, seed; a damaged row is one line naming it."""
        out = []
        query = "SELECT method, level_ppm, seed, row, hits FROM points ORDER BY method, level_ppm, seed"
        try:
            rows = self._conn.execute(query).fetchall()
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        for method, level_ppm, seed, row, bits in rows:
            try:
                out.append(_point(method, level_ppm, seed, row, bits))
            except _Damaged as exc:
                level = f"{level_ppm / 1e6:g}" if isinstance(level_ppm, int) else repr(level_ppm)
                raise PrunelabError(
                    f"{self.path}: the stored point {method} at level {level}, seed {seed} is damaged "
                    f"({exc}); delete that row (sqlite3 {self.path} \"DELETE FROM points WHERE "
                    f"method='{method}' AND level_ppm={level_ppm!r} AND seed={seed!r}\") and run the sweep "
                    f"again to compute it anew") from None
        return out


class _Damaged(Exception):
    """What is wrong with one stored row."""


_NUMBER = {"int": (int,), "float": (int, float), "str": (str,)}


def _point(method, level_ppm, seed, row, bits) -> Point:
    """One stored row read back, every field checked against `Point`'s types (raises _Damaged)."""
    try:
        data = json.loads(row)
    except (TypeError, ValueError) as exc:
        raise _Damaged(f"its row column is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Damaged("its row column is not a JSON object")
    data = {k: v for k, v in data.items() if k in _FIELDS}  # rows of newer versions read too
    for f in fields(Point):
        if f.name in ("hits", "layers"):
            continue
        if f.name not in data:
            if f.default is MISSING:
                raise _Damaged(f"'{f.name}' is missing")
            continue
        base, _, optional = str(f.type).partition(" | ")
        value = data[f.name]
        if value is None and optional == "None":
            continue
        if isinstance(value, bool) or not isinstance(value, _NUMBER[base]):
            wanted = "text" if base == "str" else "a number"
            raise _Damaged(f"'{f.name}' is {json.dumps(value)[:40]}, not {wanted}")
    layers = data.get("layers")
    def counts(v) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(type(c) is int for c in v)

    if not isinstance(layers, dict) or not all(counts(v) for v in layers.values()):
        raise _Damaged("'layers' is not a map of layer -> [zeros, size]")
    data["layers"] = {k: tuple(v) for k, v in layers.items()}
    target = data["target_sparsity"]
    key = (data["method"], level_key(target) if math.isfinite(target) else None, data["seed"])
    if key != (method, level_ppm, seed):
        raise _Damaged(f"its row says {key[0]} at level {data['target_sparsity']!r}, seed {key[2]}")
    n = data["n_images"]
    if not isinstance(bits, bytes) or n < 0 or len(bits) != -(-n // 8):
        raise _Damaged(f"its hits column does not hold {n} per-image bits")
    hits = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=n)
    return Point(**data, hits=hits.astype(bool))
