"""The verbs over the user's own objects (re-exported at the package root): a module in no registry,
a torch Dataset or DataLoader with the user's own transform. They drive the same engine as the
command line: `sweep` writes the run folder `prunelab report` reads."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import api
from .data.source import Source, as_source
from .errors import PrunelabError
from .experiment.analysis import Answer, check_budget
from .experiment.config import SweepConfig
from .experiment.lock import run_lock
from .experiment.spec import CLASSIC_LEVELS, MethodSpec, parse_levels
from .experiment.store import SWEEP, Point
from .experiment.sweep import Sweep
from .experiment.workbench import Objects, Workbench
from .io.formats import Exported, export_model, get_format
from .models import ModelCard
from .models.module import card_for_module


@dataclass(frozen=True)
class SweepResult:
    """What a sweep measured: every stored point, and each method's answer.

    Attributes:
        out: the run folder (`prunelab report OUT` rewrites its report).
        points: every point stored there, the dense baseline included.
        answers: method -> the largest level within the budget, with its interval.
    """

    out: Path
    points: list[Point]
    answers: dict[str, Answer]


def sweep(model: nn.Module | str | os.PathLike, data, *, out: str | os.PathLike,
          methods: Sequence[str] = ("global",), levels: str | Sequence[float] = CLASSIC_LEVELS,
          calibration_data=None, budget: float = 1.0, classifier: str | None = None,
          seeds: Sequence[int] = (0,), device: str = "auto", on_point: Callable[[Point], None] | None = None,
          **settings) -> SweepResult:
    """Prune `model` at every level with every method, measure each point on `data`, store it in
    `out` as it finishes, and answer how much can go; called again, computes only what is missing.

    Args:
        model: any classifier `nn.Module` (copied, never changed), or a checkpoint path.
        data: the test images: a map-style torch Dataset yielding (image tensor, int label) or a
            DataLoader over one (no shuffling), the tensors as the model takes them (the user's
            transform resized and normalised them); or, with a checkpoint path, a dataset name
            or `.npz` path as on the command line.
        out: the run folder.
        methods: method texts as `prunelab methods` lists them (one-shot ones for a module).
        levels: sparsity levels: a list, or text such as '0:1:0.1'.
        calibration_data: training images for the methods that read some (second-order ones):
            a Dataset or DataLoader like `data`, never the test images.
        budget: accuracy budget of the answers, top-1 points.
        classifier: the module name of the final classifier (kept dense unless
            prune_classifier=True); by default the last nn.Linear.
        seeds: for methods whose results depend on one.
        device: 'auto', 'cpu' or 'cuda'.
        on_point: called with each point as it is stored.
        settings: any other sweep setting by its field name (`prunelab sweep -h`), e.g.
            prune_classifier=True, layer_cap=0.99, calibration=256.
    """
    check_budget(budget)
    levels = parse_levels(levels) if isinstance(levels, str) else tuple(float(v) for v in levels)
    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise PrunelabError(f"unknown sweep setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(fields))}")
    common = dict(methods=tuple(methods), levels=levels, seeds=tuple(seeds), device=device, **settings)
    out = Path(out)
    if isinstance(model, str | os.PathLike):
        cfg = SweepConfig(checkpoint=os.fspath(model), data=os.fspath(data), **common)
        points, answers = api.sweep(cfg, out, budget, on_point)
        return SweepResult(out, points, answers)
    test = as_source(data, "data")
    calibration = as_source(calibration_data, "calibration_data") if calibration_data is not None else None
    card = card_for_module(model, test.image_shape, test.classes, classifier)
    cfg = SweepConfig(checkpoint="", data=test.name, **common)
    with run_lock(out):
        run = Sweep(cfg, out, kind=SWEEP, objects=Objects(model, card, test, calibration))
        try:
            points = run.run(on_point)
        finally:
            run.store.close()
    return SweepResult(out, points, api.answers(points, tuple(m.text for m in run.methods), budget))


def prune(model: nn.Module, method: str, level: float, *, calibration_data=None,
          example_inputs: torch.Tensor | None = None, classifier: str | None = None, seed: int = 0,
          device: str = "cpu", **settings) -> nn.Module:
    """`model` pruned to `level` by `method` (one-shot), as a sweep prunes it: a new module, with
    pruned weights exactly zero (channel methods: a smaller network); `model` is not changed.

    Args:
        model: the classifier.
        method: a one-shot method ('global', 'lamp', 'obs-global', 'channels-global', ...).
        level: the fraction of the prunable weights to remove, in [0, 1].
        calibration_data: training images (Dataset or DataLoader) for methods that read some.
        example_inputs: one input batch (N, C, H, W), or one image (C, H, W), giving the input
            shape where no calibration data does.
        classifier: the final classifier's module name (default: the last nn.Linear).
        seed: for stochastic methods.
        device: where to prune.
        settings: other pruning settings (prune_classifier, layer_cap, round_to, calibration, damp).
    """
    spec = MethodSpec.parse(method)
    if spec.quant is not None or spec.recovery.settings:
        raise PrunelabError(f"prunelab.prune takes a one-shot method; '{method}' also recovers or "
                            f"quantizes: prune with '{spec.pruner.name}' and retrain in your own loop")
    calibration = as_source(calibration_data, "calibration_data") if calibration_data is not None else None
    shape = _input_shape(example_inputs, calibration)
    card = card_for_module(model, shape, None, classifier)
    cfg = SweepConfig(checkpoint="", data="", methods=(spec.text,), levels=(level,), seeds=(seed,),
                      device=device, **settings)
    wb = _workbench(cfg, model, card, shape, calibration)
    spec.pruner.check_model(wb.model, wb.ctx)
    return wb.bench.one_shot(spec.pruner, spec.pruner.check_level(level), seed).model.eval()


def export(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx",
           example_inputs: torch.Tensor | None = None, classifier: str | None = None,
           card: ModelCard | None = None) -> Exported:
    """Write `model` (pruned or not) to `path` in `format`, read the file back and compare its
    outputs with the model's on random inputs (`Exported.max_abs_diff`).

    Formats that rebuild the network from a registered architecture (sparse, structured,
    quantized) need the model's `card` (a registered model's); a module of your own goes to ONNX.
    """
    shape = _input_shape(example_inputs, None)
    if card is None:
        card = card_for_module(model, shape, None, classifier)
        if format != "onnx":
            raise PrunelabError(f"format '{format}' rebuilds the network from a registered architecture; "
                                f"your own {type(model).__name__} goes to format='onnx'")
    fmt = get_format(format, False)
    return export_model(model, card, fmt, Path(path), shape)


def _input_shape(example_inputs: torch.Tensor | None, calibration: Source | None) -> tuple[int, ...]:
    if example_inputs is not None:
        if not isinstance(example_inputs, torch.Tensor) or example_inputs.dim() not in (3, 4):
            raise PrunelabError("example_inputs must be a tensor of one image (C, H, W) or a batch "
                                "(N, C, H, W)")
        return tuple(example_inputs.shape[-3:])
    if calibration is not None:
        return tuple(calibration.image_shape)
    raise PrunelabError("the input shape is unknown: pass example_inputs= (one image or a batch) or "
                        "calibration_data=")


def _workbench(cfg: SweepConfig, model: nn.Module, card: ModelCard, shape: tuple[int, ...],
               calibration: Source | None) -> Workbench:
    """A workbench over the user's objects that reads no test data (one point, no measuring)."""
    return Workbench(cfg, reads_data=False, objects=Objects(model, card, None, calibration),
                     input_shape=shape)
