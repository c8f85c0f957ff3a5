"""Export formats, one per file: each writes a pruned model so its savings are real and can be read
back; `export_model` writes, reloads the way a user would, and compares outputs."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...errors import PrunelabError
from ...models import ModelCard
from ...registry import Registry


@dataclass(frozen=True)
class Floor:
    """Information floor of a masked model's weights, bytes (theory).

    Attributes:
        global_: nonzeros x value bits + n x H(density) for the mask (one density for all masked
            weights), + every other tensor at value bits: the issue's floor.
        per_layer: the same with each layer's own statistics (a tighter floor for layer-varying
            masks, sum n_l H(p_l) <= n H(p); the quantized format also counts each layer's codes
            at their entropy and a conv's mask per kernel where that is less).
    """

    global_: float
    per_layer: float


class Format(ABC):
    """How a pruned model is written to disk.

    Attributes:
        name: the `--format` value.
        description: one line for listings.
        channels: True if only for channel-pruned (smaller) models, False if only for models of
            the registry's shapes (masked), None for both.
    """

    name: str
    description: str
    channels: bool | None = None
    needs_images = False  # writing it needs calibration images (`calibrated`)
    lossy = False  # the file's network is not the model's: export measures the file's top-1 too

    def accepts(self, channels: bool) -> None:
        """Refuse, in one line, a model this format cannot hold."""
        if self.channels is not None and self.channels != channels:
            raise PrunelabError(self.refusal)

    refusal = ""

    @abstractmethod
    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        """Write `model` (inputs of `input_shape`, (C, H, W)) to `path`; returns the file's bytes."""

    @abstractmethod
    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        """The model a file holds (eval mode) and its card."""

    def size_of(self, model: nn.Module, card: ModelCard) -> int | None:
        """The bytes `write` would take, where they are known without writing the file, else None."""
        return None

    def bound(self, quant, channels: bool) -> Format:
        """This format for a model quantized by `quant` (a QuantSpec, or None) and pruned by
        channels or not: formats of float weights take the decoded model as it is."""
        return self

    def calibrated(self, images: torch.Tensor) -> Format:
        """This format with calibration images (normalised training images) for `write`."""
        return self

    def logits(self, path: Path, x: torch.Tensor) -> torch.Tensor:
        """The file's logits on `x`, computed the way its users would run it."""
        back, _ = self.read(path)
        with torch.inference_mode():
            return back.eval()(x)

    def reload_diff(self, path: Path, model: nn.Module, x: torch.Tensor) -> float:
        """Max |logits of the file read back - logits of `model`| on `x` (0.0: bit-exact)."""
        back, _ = self.read(path)
        with torch.inference_mode():
            return float((back(x) - model(x)).abs().max())

    def floor(self, model: nn.Module) -> Floor | None:
        """The information floor of what this format stores, if it has one."""
        return None


FORMATS: Registry[Format] = Registry("format", "prunelab.io.formats")


@dataclass(frozen=True)
class Exported:
    """What `export_model` wrote and how well the file reproduces the model.

    Attributes:
        path: the file.
        format: its format's name.
        bytes: its size on disk, measured.
        max_abs_diff: max |logits of the reloaded file - logits of the model| on random inputs
            (onnxruntime for ONNX); 0.0 means bit-exact.
        floor: the information floor of the weights (sparse formats only), bytes.
    """

    path: Path
    format: str
    bytes: int
    max_abs_diff: float
    floor: Floor | None


def get_format(name: str, channels: bool, quant=None) -> Format:
    """The format called `name` for a (channel-pruned or masked) model quantized by `quant` (a
    QuantSpec, or None), refusing one that cannot hold it."""
    fmt = FORMATS.get(name)
    fmt.accepts(channels)
    return fmt.bound(quant, channels)


def export_model(model: nn.Module, card: ModelCard, fmt: Format, out: str | os.PathLike,
                 input_shape: tuple[int, ...], n_check: int = 8) -> Exported:
    """Write `model` in `fmt`, reload it the way a user would, and compare outputs.

    Args:
        model: the pruned model (masked registry shapes, or channel-pruned).
        card: what rebuilds and describes it.
        fmt: the format (`get_format`).
        out: file to write.
        input_shape: (C, H, W) of one image.
        n_check: random images for the output comparison.
    """
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise PrunelabError(f"cannot write {out}: folder {out.parent} does not exist")
    model = model.eval().cpu()
    x = torch.randn((n_check, *input_shape), generator=torch.Generator().manual_seed(0))
    try:
        size = fmt.write(out, model, card, input_shape)
        diff = fmt.reload_diff(out, model, x)
    except OSError as exc:
        raise PrunelabError(f"cannot write {out}: {exc}") from None
    return Exported(out, fmt.name, size, diff, fmt.floor(model))


def read_network(path: str | os.PathLike, model: str | None = None) -> tuple[nn.Module, ModelCard, str]:
    """(network, card, what the file is) for a file `prunelab export` wrote (sparse, quantized,
    structured or ONNX: told by its first bytes, its header or its suffix) or a checkpoint (`model` names the
    architecture of a plain state dict)."""
    from ..checkpoint import load_checkpoint
    from .quantized import QUANT_MAGIC
    from .sparse import SPARSE_MAGIC

    path = Path(path)
    if not path.exists():
        raise PrunelabError(f"{path} does not exist; pass a checkpoint (folder, safetensors, .pt/.th) or a "
                            f"file 'prunelab export' wrote")
    if path.suffix == ".onnx" and path.is_file():
        from .onnx import read_onnx

        return read_onnx(path)
    if path.is_file():
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise PrunelabError(f"cannot read {path}: {exc.strerror or exc}") from None
        for magic, name in ((SPARSE_MAGIC, "sparse"), (QUANT_MAGIC, "quantized")):
            if head == magic:
                return *FORMATS.get(name).read(path), name
        if path.suffix == ".safetensors" and _has_spec(path):
            return *FORMATS.get("structured").read(path), "structured"
    return *load_checkpoint(path, model), "checkpoint"


def _has_spec(path: Path) -> bool:
    """A safetensors file whose header holds a channel-pruned architecture (`--format structured`)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return "prunelab_spec" in (f.metadata() or {})
    except (OSError, SafetensorError):
        return False  # not one: the checkpoint reader says what it is
