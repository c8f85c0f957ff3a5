"""Checkpoints: safetensors weights plus a JSON of metadata; foreign torch files read with weights_only."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .errors import PrunelabError
from .models import create_model, model_info

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
TORCH_SUFFIXES = (".th", ".pt", ".pth", ".tar", ".bin")


@dataclass
class CheckpointMeta:
    """What travels with the weights: enough to rebuild, normalise and describe the model."""

    model: str
    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] | None = None
    data: str | None = None
    epochs: int | None = None
    top1: float | None = None  # percent, on `data`'s test split
    recipe: dict = field(default_factory=dict)
    source: str | None = None  # file the weights were read from
    prunelab_version: str = __version__


def save_checkpoint(folder: str | os.PathLike, model: nn.Module, meta: CheckpointMeta) -> Path:
    """Write `model.safetensors` and `model.json` into `folder`; returns the weights path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"model": meta.model})
    os.replace(tmp, weights)
    (folder / META_FILE).write_text(json.dumps(asdict(meta), indent=2) + "\n")
    return weights


def _read_meta(path: Path) -> CheckpointMeta:
    try:
        raw = json.loads(path.read_text())
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        if raw.get("classes") is not None:
            raw["classes"] = tuple(raw["classes"])
        return CheckpointMeta(**raw)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PrunelabError(f"checkpoint metadata {path} is unreadable ({exc}); "
                            f"rewrite it or pass --model for a plain weights file") from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PrunelabError(f"cannot read checkpoint {path} with weights_only=True: {first}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PrunelabError(f"checkpoint {path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _fit(model: nn.Module, state: dict[str, torch.Tensor], name: str, path: Path) -> None:
    """Load `state` strictly into `model`, or explain in one line why it does not fit."""
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("shape mismatch (checkpoint vs model)", shapes)):
            if items:
                more = f" and {len(items) - 2} more" if len(items) > 2 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:2])}{more}")
        raise PrunelabError(f"checkpoint {path} does not fit model '{name}': {'; '.join(parts)}; "
                            f"pass the --model it was trained as")
    model.load_state_dict(state, strict=False)


def load_checkpoint(path: str | os.PathLike, model_name: str | None = None
                    ) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild a model from a checkpoint without executing any code from it.

    Args:
        path: a prunelab checkpoint folder, its `model.safetensors`, or a foreign torch file
            (`.th/.pt/.pth`, read with `weights_only=True`; a `state_dict` entry and `module.`
            prefixes are handled).
        model_name: registry name; required for foreign files, checked against prunelab metadata.

    Returns:
        (model in eval mode on the CPU, its metadata).
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise PrunelabError(f"checkpoint {path} does not exist; pass a file written by "
                            f"'prunelab train' or a .th/.pt state dict")
    if path.suffix == ".safetensors":
        meta_path = path.with_name(META_FILE) if path.name == WEIGHTS_FILE else path.with_suffix(".json")
        if not meta_path.exists():
            raise PrunelabError(f"checkpoint {path} has no metadata file {meta_path}")
        meta = _read_meta(meta_path)
        if model_name and model_name != meta.model:
            raise PrunelabError(f"checkpoint {path} is a '{meta.model}', not a '{model_name}'; "
                                f"drop --model or pass --model {meta.model}")
        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's to replace
            raise PrunelabError(f"cannot read {path}: {exc}") from None
    elif path.suffix in TORCH_SUFFIXES:
        if not model_name:
            raise PrunelabError(f"checkpoint {path} does not say which model it is; pass --model")
        info = model_info(model_name)
        state = _read_torch(path)
        head, stem = state.get(f"{info.classifier}.weight"), state.get(f"{info.stem}.weight")
        if head is None or stem is None:
            raise PrunelabError(f"checkpoint {path} has no '{info.classifier}.weight' or "
                                f"'{info.stem}.weight', so it is not a '{model_name}'; "
                                f"pass the --model it was trained as")
        meta = CheckpointMeta(model=model_name, num_classes=int(head.shape[0]),
                              in_channels=int(stem.shape[1]), mean=info.mean, std=info.std,
                              source=str(path))
    else:
        raise PrunelabError(f"checkpoint {path}: unknown file type '{path.suffix}'; "
                            f"use a .safetensors written by prunelab or a .th/.pt/.pth file")
    model = create_model(meta.model, meta.num_classes, meta.in_channels)
    _fit(model, state, meta.model, path)
    meta.source = meta.source or str(path)
    return model.eval(), meta
