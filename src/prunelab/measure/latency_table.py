"""Per-layer latency tables: every convolution and linear layer of a network timed alone in a
runtime, at the widths channel pruning could leave it, so that an allocation can price a channel
in seconds of the runtime it will run in rather than in MACs.

A layer is timed on random inputs of the spatial size it sees in the network, at a grid of input
and output widths (fractions 1, 7/8, ..., 1/8 of its own, on the sides pruning can change:
not the image's channels into the stem, not the classes out of the classifier); the time at any
other width is interpolated bilinearly. Layers of the same shape are timed once. In onnxruntime
batch norm folds into the convolution before it, so a layer alone costs what it costs in the
network, less the fused activation and the residual additions (not channel-dependent layers of
their own, or small)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PrunelabError
from .latency import RUNTIMES, check_threads, latencies

TABLE_KIND = "prunelab-latency-table"
VERSION = 1
FRACTIONS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)


@dataclass(frozen=True)
class LayerGrid:
    """Seconds per forward of one layer alone at a grid of (input, output) widths."""

    ins: tuple[int, ...]  # increasing
    outs: tuple[int, ...]
    seconds: tuple[tuple[float, ...], ...]  # [len(ins)][len(outs)]

    def at(self, cin: float, cout: float) -> float:
        """Seconds at `cin` inputs and `cout` outputs, interpolated (held at the grid's ends)."""
        s = np.asarray(self.seconds)
        by_out = np.array([np.interp(cout, self.outs, row) for row in s])
        return float(np.interp(cin, self.ins, by_out))


@dataclass(frozen=True)
class LatencyTable:
    """What each prunable layer of one model costs in one runtime, and where that was measured.

    Attributes:
        model: the model's registry name; layers are its module names.
        runtime, threads, batch: what ran the timed forwards (`measure.latency` runtimes).
        versions: the versions of the software that ran them (torch, onnxruntime).
        machine: the processor they ran on, as the system names it.
        input_shape: (C, H, W) of one image of the network the layers were timed for.
        layers: module name -> (its widths, its grid).
        source: the file it was read from (for messages), else "".
    """

    model: str
    runtime: str
    threads: int
    batch: int
    versions: dict[str, str]
    machine: str
    input_shape: tuple[int, ...]
    layers: dict[str, tuple[tuple[int, int], LayerGrid]] = field(default_factory=dict)
    source: str = field(default="", compare=False)

    def seconds(self, layer: str, cin: float, cout: float) -> float:
        return self.layers[layer][1].at(cin, cout)

    def predict(self, model: nn.Module) -> float:
        """Seconds the table gives `model` (this network, perhaps with fewer channels): every
        priced layer at its present widths, summed."""
        return sum(self.seconds(name, *widths(m)) for name, m in model.named_modules() if name in self.layers)

    def total(self) -> float:
        """Seconds of every layer at its full width, summed (the prunable layers' share)."""
        return sum(grid.at(*widths) for widths, grid in self.layers.values())

    def to_json(self) -> dict:
        layers = {name: {"in": w[0], "out": w[1], "ins": list(g.ins), "outs": list(g.outs),
                         "seconds": [list(row) for row in g.seconds]} for name, (w, g) in self.layers.items()}
        return {"kind": TABLE_KIND, "version": VERSION, "model": self.model, "runtime": self.runtime,
                "threads": self.threads, "batch": self.batch, "versions": self.versions,
                "machine": self.machine, "input_shape": list(self.input_shape), "layers": layers}

    @classmethod
    def from_json(cls, data: dict, source: str = "") -> LatencyTable:
        layers = {}
        for name, v in data["layers"].items():
            grid = LayerGrid(tuple(int(i) for i in v["ins"]), tuple(int(o) for o in v["outs"]),
                             tuple(tuple(float(s) for s in row) for row in v["seconds"]))
            seconds = np.asarray(grid.seconds)
            if seconds.shape != (len(grid.ins), len(grid.outs)):
                raise ValueError(f"layer {name}: grid shape")
            if not (np.isfinite(seconds) & (seconds > 0)).all():  # a time is a finite number > 0
                odd = seconds[~(np.isfinite(seconds) & (seconds > 0))][0]
                raise ValueError(f"layer {name} holds {odd:g} seconds, not a time > 0")
            layers[name] = ((int(v["in"]), int(v["out"])), grid)
        return cls(str(data["model"]), str(data["runtime"]), int(data["threads"]), int(data["batch"]),
                   dict(data["versions"]), str(data["machine"]), tuple(data["input_shape"]), layers,
                   source)


def machine() -> str:
    """The processor's model name (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime_versions(runtime: str) -> dict[str, str]:
    out = {"torch": torch.__version__}
    if runtime.startswith("onnxruntime"):
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    return out


def widths(m: nn.Module) -> tuple[int, int]:
    """(inputs, outputs) of a conv or linear layer."""
    return (m.in_features, m.out_features) if isinstance(m, nn.Linear) else (m.in_channels, m.out_channels)


def layer_widths(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Module name -> (inputs, outputs) of every conv and linear layer."""
    return {name: widths(m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}


def _input_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Module name -> the shape of one input (batch dropped) of every conv and linear layer."""
    shapes, hooks = {}, []

    def seen(name: str):
        def hook(module, args) -> None:
            shapes.setdefault(name, tuple(args[0].shape[1:]))
        return hook

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            hooks.append(m.register_forward_pre_hook(seen(name)))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _layer_at(layer: nn.Module, cin: int, cout: int) -> nn.Module:
    """A fresh layer shaped as `layer` with `cin` inputs and `cout` outputs (random weights)."""
    if isinstance(layer, nn.Linear):
        return nn.Linear(cin, cout, bias=layer.bias is not None)
    groups = cin if layer.groups > 1 else 1  # depthwise stays depthwise; other grouped convs: refused
    return nn.Conv2d(cin, cout, layer.kernel_size, layer.stride, layer.padding, layer.dilation, groups,
                     bias=layer.bias is not None)


def _widths(n: int, varies: bool) -> tuple[int, ...]:
    return tuple(sorted({max(1, round(f * n)) for f in FRACTIONS})) if varies else (n,)


def measure_table(model: nn.Module, model_name: str, input_shape: tuple[int, ...], stem: str,
                  classifier: str, runtime: str = "onnxruntime", threads: int = 1, batch: int = 1,
                  repeats: int = 30, on_layer=None) -> LatencyTable:
    """Time every conv and linear layer of `model` alone in `runtime`, at the widths pruning could
    leave it (see the module's text). `on_layer(name, index, layers)` is told each layer's turn."""
    runtime, threads = RUNTIMES.get(runtime).name, check_threads(threads)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise PrunelabError(f"batch must be a whole number >= 1, got {batch!r}")
    model = model.cpu().eval()
    shapes = _input_shapes(model, torch.zeros((1, *input_shape)))
    modules = dict(model.named_modules())
    timed: dict[tuple, LayerGrid] = {}
    layers = {}
    for i, (name, shape) in enumerate(shapes.items()):
        if on_layer:
            on_layer(name, i, len(shapes))
        m = modules[name]
        if isinstance(m, nn.Conv2d) and 1 < m.groups != m.in_channels:
            raise PrunelabError(f"layer '{name}' is a grouped convolution ({m.groups} groups): a latency "
                                f"table prices depthwise and ordinary convolutions only")
        cin, cout = widths(m)
        depthwise = isinstance(m, nn.Conv2d) and m.groups > 1
        ins = _widths(cin, name != stem)
        outs = ins if depthwise else _widths(cout, name != classifier)
        key = (type(m).__name__, repr(m), shape[1:], ins, outs)
        if key not in timed:
            timed[key] = _time_grid(m, shape, ins, outs, depthwise, runtime, threads, batch, repeats)
        layers[name] = ((cin, cout), timed[key])
    return LatencyTable(model_name, runtime, threads, batch, runtime_versions(runtime), machine(),
                        tuple(input_shape), layers)


def _time_grid(m: nn.Module, shape: tuple[int, ...], ins, outs, depthwise: bool, runtime: str,
               threads: int, batch: int, repeats: int) -> LayerGrid:
    """Seconds of `m`'s shape at every (input, output) width of the grid (a depthwise layer's
    two widths move together: its row is the time at that width throughout)."""
    def seconds(cin: int, cout: int) -> float:
        layer = _layer_at(m, cin, cout)
        return latencies({"layer": layer}, (cin, *shape[1:]), batch, threads, warmup=3, repeats=repeats,
                         runtime=runtime)["layer"].median

    rows = [(seconds(cin, cin),) * len(outs) if depthwise else tuple(seconds(cin, cout) for cout in outs)
            for cin in ins]
    return LayerGrid(tuple(ins), tuple(outs), tuple(rows))


def save_table(path: str | Path, table: LatencyTable) -> None:
    from ..io.atomic import write_whole

    write_whole(path, (json.dumps(table.to_json(), indent=1) + "\n").encode())


def load_table(path: str | Path) -> LatencyTable:
    """Read a table written by `prunelab latency-table`, or say in one line what is wrong with it."""
    path = Path(path)
    fix = "measure one with 'prunelab latency-table CHECKPOINT --out FILE'"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise PrunelabError(f"cannot read the latency table {path} ({exc.strerror or exc}); {fix}") from None
    except ValueError:
        raise PrunelabError(f"latency table {path} is not JSON; {fix}") from None
    if not isinstance(data, dict) or data.get("kind") != TABLE_KIND:
        raise PrunelabError(f"{path} is not a prunelab latency table; {fix}")
    if data.get("version") != VERSION:
        raise PrunelabError(f"latency table {path} has format version {data.get('version')!r}, this "
                            f"prunelab reads {VERSION}; {fix}")
    try:
        return LatencyTable.from_json(data, str(path))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise PrunelabError(f"latency table {path} is damaged ({type(exc).__name__}: {exc}); {fix}") from None


def check_table(table: LatencyTable, path: str | Path, model_name: str, layers: dict[str, tuple[int, int]],
                runtime: str | None = None, threads: int | None = None) -> LatencyTable:
    """`table` if it prices this model's layers (name -> (in, out) widths) and, where given, was
    measured in `runtime` with `threads` threads (the runtime the points are timed in); else one line."""
    if table.model != model_name:
        raise PrunelabError(f"latency table {path} was measured for {table.model}, not {model_name}; "
                            f"measure one for this checkpoint with 'prunelab latency-table'")
    if runtime is not None and table.runtime != runtime:
        raise PrunelabError(f"latency table {path} was measured in {table.runtime}, but the points are timed "
                            f"in {runtime} (--runtime); pass --runtime {table.runtime}, or measure a table "
                            f"with 'prunelab latency-table ... --runtime {runtime}'")
    if threads is not None and table.threads != threads:
        raise PrunelabError(f"latency table {path} was measured with {table.threads} thread(s), but the "
                            f"points are timed with {threads} (--threads); pass --threads {table.threads} "
                            f"or measure a table with --threads {threads}")
    for name, widths in layers.items():
        if name not in table.layers or table.layers[name][0] != widths:
            held = table.layers.get(name, (None,))[0]
            raise PrunelabError(f"latency table {path} does not price layer '{name}' at {widths[0]}->"
                                f"{widths[1]} channels (it holds {held}); it was measured for another "
                                f"network: measure one for this checkpoint with 'prunelab latency-table'")
    return table
