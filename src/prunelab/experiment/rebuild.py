"""A stored point's network, rebuilt from its run folder: the checkpoint pruned again (one-shot),
or the model the sweep kept (retrained, recalibrated, or a chain's state)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import resolve
from ..data import load_dataset
from ..errors import PrunelabError
from ..io.checkpoint import load_checkpoint, weights_digest
from ..io.formats import FORMATS
from ..models import ModelCard
from ..pruning import Pruned
from ..quant.model import dequantized
from ..recovery.members.iterative import read_chain_state
from .config import SweepConfig
from .runfolder import FORMAT_SUFFIX, RunFolder
from .spec import MethodSpec
from .store import Store, level_key
from .workbench import Workbench


def run_checkpoint(run: str | Path, config: dict, digest: str | None) -> Path:
    """The checkpoint a run folder was swept from: where the sweep was told, or else the same path
    relative to the run folder (a run folder moved or unpacked together with its checkpoint).
    It must still hold the weights the sweep hashed (`digest`): another file there is refused."""
    if config.get("module"):
        raise PrunelabError(f"run {run} was swept from a Python module ({config['module']}), which no file "
                            f"rebuilds; rebuild its points from Python: prunelab.prune(model, method, level) "
                            f"or prunelab.export(model, ...)")
    places = [Path(config["checkpoint"])]
    if config.get("checkpoint_from_run"):
        places.append(Path(run) / config["checkpoint_from_run"])
    found = next((p for p in places if p.exists()), None)
    if found is None:
        raise PrunelabError(f"run {run} was swept from checkpoint {places[0]}, which is gone"
                            + (f" (nor at {places[1]})" if len(places) > 1 else "")
                            + "; put the checkpoint back there to rebuild its points")
    if digest and weights_digest(found) != digest:
        raise PrunelabError(f"checkpoint {found} holds other weights than run {run} was swept from "
                            f"(sha256 differs); put the original checkpoint back")
    return found


def _stored(run: str | Path, method: str, level: float, seed: int) -> tuple[dict, str | None]:
    """The run's config and weights digest, once the point is known to be stored (else one line)."""
    store = Store.open(run)
    try:
        config = store.meta("config") or {}
        digest = (store.meta("fingerprint") or {}).get("weights_sha256")
        keys = store.keys()
    finally:
        store.close()
    if (method, level_key(level), seed) not in keys:
        swept = sorted({k[1] / 1_000_000 for k in keys if k[0] == method})
        if not swept:
            methods = sorted({k[0] for k in keys})
            raise PrunelabError(f"run {run} has no points of method '{method}'; "
                                f"it swept {', '.join(methods)}")
        raise PrunelabError(f"level {level:g} of '{method}' (seed {seed}) was not swept in {run}; "
                            f"swept levels: {', '.join(f'{v:g}' for v in swept)}")
    return config, digest


def point_model(run: str | Path, method: str, level: float, seed: int = 0
                ) -> tuple[Pruned, ModelCard, tuple[int, ...]]:
    """Rebuild the network of one stored point.

    Returns:
        (the pruned network, its model card, (C, H, W) of one input).
    """
    config, digest = _stored(run, method, level, seed)
    spec = MethodSpec.parse(method, allow_dense=True)
    if spec.quant is not None and not spec.keeps_model:  # its base's network, quantized as the sweep did
        base, card, shape = point_model(run, spec.base.text, level, seed)
        return Pruned(dequantized(base.model, spec.quant, fold=True), base.masks), card, shape
    if "input_shape" in config:
        shape = tuple(config["input_shape"])
    else:  # runs from before the shape was saved: read it off the data
        shape = tuple(load_dataset(config["data"], config.get("data_root")).test.x.shape[1:])
    if not spec.from_checkpoint:
        return *_kept(run, spec, level, seed, config, digest), shape
    wb = Workbench(saved_config(run, config, digest), reads_data=False, input_shape=shape)
    if spec.is_dense:
        return Pruned(wb.model), wb.card, shape
    # The sweep's own context (calibration images drawn as it drew them, read only if the pruner asks)
    return spec.pruner.prune(wb.model, level, wb.ctx.but(seed=seed)), wb.card, shape


def saved_config(run: str | Path, config: dict, digest: str | None) -> SweepConfig:
    """The settings a run was swept with (less its retraining recipe: what is rebuilt here is
    one-shot), pointing at the checkpoint found for it and at the run's own copy of its latency
    table, on the CPU."""
    known = {f.name for f in dataclasses.fields(SweepConfig)}
    saved = {k: v for k, v in config.items() if k in known and k != "recovery"}
    table = RunFolder(run).latency_table
    if saved.get("latency_table") and table.exists():
        saved["latency_table"] = str(table)
    saved.update(checkpoint=str(run_checkpoint(run, config, digest)), model=config.get("resolved_model"),
                 device="cpu")
    return resolve(SweepConfig, **saved)


def _kept(run: str | Path, spec: MethodSpec, level: float, seed: int, config: dict, digest
          ) -> tuple[Pruned, ModelCard]:
    """The kept model of a point whose weights came from training (or a chain's state at its level)."""
    folder = RunFolder(run)
    for file_format in FORMAT_SUFFIX:  # the formats a sweep keeps models in
        path = folder.point_file(spec, level, seed, file_format)
        if path.exists():
            model, card = FORMATS.get(file_format).read(path)
            return Pruned(model), card
    chain = folder.chain_state(spec, seed, level)
    if chain.exists():
        model, card = load_checkpoint(run_checkpoint(run, config, digest), config.get("resolved_model"))
        state, masks = read_chain_state(chain)
        model.load_state_dict(state)
        return Pruned(model.eval(), masks), card
    raise PrunelabError(f"run {run} kept no model for the retrained point '{spec.text}' at {level:g} (seed "
                        f"{seed}): sweeps before prunelab kept them did not; sweep it again into a "
                        f"new folder")
