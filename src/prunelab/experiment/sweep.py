"""The sweep: every (method, level, seed) is computed by `run_point`, stored as it finishes, and
the same sweep run again computes only what is missing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .. import distributed
from ..errors import PrunelabError
from .config import SweepConfig, check_profile, validate
from .estimate import Costs, Estimate, check_time_budget, estimate, fitted_epochs
from .fingerprint import fingerprint, recipes, upgrade
from .point import run_point
from .runfolder import RunFolder, write_text
from .sharing import serve, stop_serving
from .spec import MethodSpec
from .store import DENSE, SENSITIVITY, SWEEP, Point, Store, level_key
from .workbench import Workbench


@dataclass(frozen=True)
class PointSpec:
    """One point of a sweep: a parsed method, a level, a seed."""

    method: MethodSpec
    level: float
    seed: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.method.text, level_key(self.level), self.seed)


def plan(methods: list[MethodSpec], levels: tuple[float, ...], seeds: tuple[int, ...]) -> list[PointSpec]:
    """The dense baseline first, then method x level x seed (one seed for methods no seed changes)."""
    points = [PointSpec(MethodSpec.parse(DENSE, allow_dense=True), 0.0, 0)]
    for m in methods:
        points += [PointSpec(m, lv, s) for s in (seeds if m.seeded else (0,)) for lv in m.levels(levels)]
    return points


def check_without_training(methods: list[MethodSpec]) -> None:
    """The user's own Dataset holds images as their transform gives them, not the uint8 pixels
    retraining augments: methods that retrain are refused up front (batch norm is re-estimated on
    them as they are)."""
    for m in methods:
        if m.recovery.trains or m.recovery.chained or (m.quant is not None and m.quant.tuned):
            raise PrunelabError(f"method '{m.text}' retrains, which a sweep over Python objects cannot do; "
                                f"sweep one-shot methods (e.g. '{m.pruner.name if m.pruner else 'global'}', "
                                f"or '+bn'), or prune with prunelab.prune(model, method, level) inside your "
                                f"own training loop")


def share(points: list[PointSpec], ranks: int, me: int) -> list[PointSpec]:
    """This process's share under torchrun: every point of an iterative chain goes to one process
    (they depend on each other), a quantized point to its base point's, other points round-robin."""
    chains: dict[tuple[str, int], int] = {}
    owners: dict[tuple[str, int, int], int] = {}
    for i, p in enumerate(points):
        if p.method.quant is not None:
            owner = owners[PointSpec(p.method.base, p.level, p.seed).key]
        elif p.method.recovery.chained:
            owner = chains.setdefault((p.method.text, p.seed), len(chains)) % ranks
        else:
            owner = i % ranks
        owners[p.key] = owner
    return [p for p in points if owners[p.key] == me]


class Sweep:
    """A prepared sweep: the workbench and the store opened, the points still to compute in `todo`.

    `kind` is what the folder is for, SWEEP or SENSITIVITY (a folder holding the other is refused);
    by default a sweep, or a sensitivity run when no methods are given. The caller holds the
    folder's lock (`RunFolder.hold`) across the sweep's life, as `api.sweep` does."""

    def __init__(self, cfg: SweepConfig, out: str | Path, kind: str | None = None, objects=None):
        self.methods = validate(cfg)
        self.kind = kind or (SWEEP if cfg.methods else SENSITIVITY)
        self.cfg, self.folder = cfg, RunFolder(out)
        self.workbench = Workbench(cfg, objects=objects)
        self.costs = Costs(self.workbench)  # measured once, when first asked
        if self.workbench.objects is not None:
            check_without_training(self.methods)
        check_profile(self.methods, self.workbench.profile)
        for pruner in {m.pruner for m in self.methods}:
            pruner.check_model(self.workbench.model, self.workbench.ctx)
        self.fitted: Estimate | None = None  # with --fit-epochs: what the epochs sized now cost
        if cfg.fit_epochs:
            cfg = self._fit_epochs(cfg)
        self.fingerprint = fingerprint(self.workbench)
        _ = self.workbench.dense_macs  # counted once, here: the counter's first use costs most of a second
        if any(m.pruner.needs_calibration for m in self.methods):
            _ = self.workbench.calibration  # drawn now: a count the training split cannot give fails first
        if any(m.reads_training_split for m in self.methods):
            _ = self.workbench.training_source  # found now: a split with no images fails before any point
        if any(m.recovery.trains or (m.quant is not None and m.quant.tuned) for m in self.methods):
            _ = self.workbench.train  # and what retraining holds in memory, before any point
        self.store = self._open_store()
        # Called as (method, level, seed, epoch record) after every retraining epoch.
        self.on_train_epoch: Callable[[str, float, int, dict], None] | None = None
        done = self.store.keys()
        self.todo = [p for p in self.mine() if p.key not in done]
        # Measured now when a budget is given: one that cannot be met is refused before any point
        # (epochs fitted to it were sized within it when the run began: a resume goes on).
        self.estimate = None
        if cfg.fit_epochs:
            self.estimate = estimate(self.workbench, self.todo, self.costs)
        elif cfg.time_budget:
            self.estimate = check_time_budget(self.workbench, self.todo, cfg.time_budget, self.costs)

    def _fit_epochs(self, cfg: SweepConfig) -> SweepConfig:
        """`cfg` with its retraining epochs sized to its time budget: measured now for a new run
        folder, read back from its stored settings on every resume (its points' recipe)."""
        stored = self._stored_config()
        if stored is not None:
            if not stored.get("fit_epochs"):
                given = (stored.get("recovery") or {}).get("epochs", "as it was")
                raise PrunelabError(f"run folder {self.folder.root} was swept with --epochs {given}, not "
                                    f"--fit-epochs; resume it with those epochs, or size new ones into "
                                    f"another --out")
            epochs = int(stored["recovery"]["epochs"])
        else:  # each process measures; the first one's epochs are every process's recipe
            epochs, self.fitted = fitted_epochs(self.workbench, self.mine(), cfg.time_budget, self.costs)
            epochs = distributed.broadcast(epochs)
        cfg = replace(cfg, recovery=replace(cfg.recovery, epochs=epochs))
        self.cfg = self.workbench.cfg = cfg  # before the workbench's retraining bench is built
        return cfg

    def _stored_config(self) -> dict | None:
        """The settings the run folder's store was swept with; None for a new folder (or an empty
        or damaged store: opening it for the sweep says which)."""
        if not self.folder.store.exists():
            return None
        try:
            store = Store.open(self.folder.root)
        except PrunelabError:
            return None
        try:
            return store.meta("config")
        finally:
            store.close()

    def _open_store(self) -> Store:
        wb, out = self.workbench, self.folder.root
        config = {**asdict(self.cfg), "resolved_model": wb.card.model,
                  "classes": list(wb.test.classes or map(str, range(wb.card.num_classes))),
                  "prunable": wb.prunable, "device": str(wb.device), "input_shape": list(wb.input_shape)}
        if wb.objects is None:
            checkpoint = Path(self.cfg.checkpoint).resolve()
            config["checkpoint_from_run"] = os.path.relpath(checkpoint, out.resolve())
        else:  # a Python module: no file rebuilds it
            config["module"] = wb.card.model
        if distributed.is_main():  # under torchrun the first process creates the store, then the rest open it
            store = Store.create(out, self.fingerprint, config, self.kind, recipes(self.cfg), upgrade)
            # A copy for people to read, rewritten on every resume; the store's is what is read back.
            write_text(self.folder.config, json.dumps({**config, "kind": self.kind}, indent=2) + "\n")
            if wb.latency_table is not None:  # kept with the run: its points are rebuilt from it
                write_text(self.folder.latency_table, json.dumps(wb.latency_table.to_json(), indent=1) + "\n")
        distributed.barrier()
        return store if distributed.is_main() else Store.create(out, self.fingerprint, config, self.kind,
                                                                 recipes(self.cfg), upgrade)

    def mine(self) -> list[PointSpec]:
        """This process's points of the whole plan (under `--share images`, the first process's
        are all of them)."""
        points = plan(self.methods, self.cfg.levels, self.cfg.seeds)
        if self.workbench.shares_images:
            return points if distributed.is_main() else []
        return share(points, distributed.world_size(), distributed.rank())

    def point(self, method: str | MethodSpec, level: float, seed: int) -> Point:
        """Compute (not store) one point; `method` as text ('global+iter', 'dense') or parsed."""
        if isinstance(method, str):
            method = MethodSpec.parse(method, allow_dense=True)
        hook = self.on_train_epoch
        self.workbench.on_epoch = (lambda record: hook(method.text, level, seed, record)) if hook else None
        return run_point(method, level, seed, self.workbench, self.folder)

    def run(self, on_point: Callable[[Point], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Point]:
        """Compute every missing point, storing each as it finishes; returns all stored points.

        `should_stop` is asked before each point: True ends the loop there (what is left stays
        missing, and the same sweep run again computes it)."""
        wb = self.workbench
        try:
            if wb.shares_images and not distributed.is_main():
                serve(wb.test, self.cfg.batch_size, wb.device)  # until the first process is done
            else:
                try:
                    self._compute(on_point, should_stop)
                finally:
                    if wb.shares_images:
                        stop_serving()
        finally:  # under torchrun: every process's points are stored, and none waits for one that failed
            distributed.barrier()
        return self.store.points()

    def _compute(self, on_point, should_stop) -> None:
        for p in list(self.todo):
            if should_stop is not None and should_stop():
                break
            point = self.point(p.method, p.level, p.seed)
            self.store.add(point)
            self.todo.remove(p)
            self.folder.drop_partial(p.method, p.level, p.seed)
            if on_point is not None:
                on_point(point)

    @property
    def dense_state(self) -> dict:
        return self.workbench.dense_state
