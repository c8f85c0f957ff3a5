"""Checkpoints: safetensors weights (one file or shards) plus the model card as JSON; foreign torch
files read with weights_only, so no code from a checkpoint ever runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import PrunelabError, PrunelabWarning
from ..models import ModelCard, create_model, model_info
from .atomic import save_tensors

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
INDEX_FILE = "model.safetensors.index.json"  # a sharded checkpoint's index (Hugging Face convention)
SHARD_GLOB = "model-*-of-*.safetensors"
SHARDED_FORMAT = "prunelab-sharded/1"
SHARD_HEADER_ALLOWANCE = 512  # bytes of safetensors header counted per tensor when filling a shard
TORCH_SUFFIXES = (".th", ".pt", ".pth", ".tar", ".bin")


def save_checkpoint(folder: str | os.PathLike, model: nn.Module, card: ModelCard,
                    max_shard_bytes: int | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write the weights and `model.json` into `folder`; returns the weights path.

    Args:
        folder: created if missing.
        model: the network; its state dict is saved.
        card: what rebuilds and describes it.
        max_shard_bytes: if given, the weights are sharded as the Hugging Face convention has it:
            `model-00001-of-0000N.safetensors` files of at most this many bytes each, plus
            `model.safetensors.index.json` (which tensor is in which shard, and each shard's
            sha256). Returns the index path then.
        dtype: store floating tensors in this dtype (e.g. torch.float16, half the bytes); they
            load back into the model's own dtype.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    for stale in [folder / WEIGHTS_FILE, folder / INDEX_FILE, *folder.glob(SHARD_GLOB)]:
        stale.unlink(missing_ok=True)  # a folder holds one layout: a reader never mixes two saves
    if max_shard_bytes is None:
        weights = folder / WEIGHTS_FILE
        save_tensors(weights, state, {"model": card.model})
    else:
        weights = _write_shards(folder, state, card.model, max_shard_bytes)
    (folder / META_FILE).write_text(json.dumps(card.to_json(), indent=2) + "\n")
    return weights


def _write_shards(folder: Path, state: dict[str, torch.Tensor], model: str, max_bytes: int) -> Path:
    """Tensors packed first-fit by decreasing size into as few shards of at most `max_bytes`
    (headers included) as that finds, each shard in state order; the index is written last, so
    its presence means every shard is whole."""
    order = {name: i for i, name in enumerate(state)}
    need = {name: t.numel() * t.element_size() + SHARD_HEADER_ALLOWANCE for name, t in state.items()}
    bins: list[list[str]] = []
    room: list[int] = []
    for name in sorted(state, key=lambda k: (-need[k], order[k])):
        if need[name] > max_bytes:
            raise PrunelabError(f"tensor {name} takes {need[name]:,} bytes, more than the shard size "
                                f"{max_bytes:,}; pass a larger shard size")
        fit = next((i for i, free in enumerate(room) if free >= need[name]), None)
        if fit is None:
            bins.append([])
            room.append(max_bytes)
            fit = len(bins) - 1
        bins[fit].append(name)
        room[fit] -= need[name]
    groups = sorted((sorted(b, key=order.get) for b in bins), key=lambda b: order[b[0]])
    shards = [{name: state[name] for name in group} for group in groups]
    n = len(shards)
    weight_map, digests = {}, {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{n:05d}.safetensors"
        save_tensors(folder / file, shard, {"model": model, "format": "pt"})
        digests[file] = _sha256_file(folder / file)
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total, "format": SHARDED_FORMAT, "sha256": digests},
             "weight_map": weight_map}
    tmp = folder / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, folder / INDEX_FILE)
    return folder / INDEX_FILE


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_index(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(tensor -> shard file, shard file -> sha256 or '') of a shard index, or one line saying why not."""
    try:
        index = json.loads(path.read_text())
        weight_map = index["weight_map"]
        digests = (index.get("metadata") or {}).get("sha256") or {}
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError("weight_map is not a map of tensor names to shard files")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PrunelabError(f"shard index {path} is unreadable ({exc}); copy it again from where the "
                            f"checkpoint was written") from None
    return weight_map, {f: digests.get(f, "") for f in sorted(set(weight_map.values()))}


def _read_shards(index_path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a sharded checkpoint; a missing, corrupt or incomplete shard is one line."""
    weight_map, shards = _read_index(index_path)
    folder, state = index_path.parent, {}
    outside = next((file for file in shards if Path(file).name != file), None)
    if outside is not None:
        raise PrunelabError(f"checkpoint {folder}: its index names shard {outside}, a path outside the "
                            f"folder; an index lists shards beside it by file name only")
    unchecked = [file for file, digest in shards.items() if not digest]
    if unchecked:
        warnings.warn(PrunelabWarning(f"checkpoint {folder}: its index records no sha256 for "
                                      f"{len(unchecked)} of {len(shards)} shards ({', '.join(unchecked[:3])}"
                                      f"{', ...' if len(unchecked) > 3 else ''}), so they are loaded "
                                      f"unchecked: a damaged shard would go unnoticed"), stacklevel=2)
    for file, digest in shards.items():
        path = folder / file
        if not path.is_file():
            raise PrunelabError(f"checkpoint {folder}: shard {file} is missing (the index lists "
                                f"{len(shards)}); copy every shard beside {index_path.name}")
        if digest and _sha256_file(path) != digest:
            raise PrunelabError(f"checkpoint {folder}: shard {file} is corrupt (its sha256 is not the "
                                f"one its index recorded); copy it again")
        try:
            part = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's to replace
            raise PrunelabError(f"cannot read shard {path}: {exc}") from None
        want = {k for k, f in weight_map.items() if f == file}
        if set(part) != want:
            odd = sorted(want ^ set(part))
            raise PrunelabError(f"checkpoint {folder}: shard {file} does not hold what its index says "
                                f"({len(odd)} tensors differ, e.g. {odd[0]}); copy it again")
        state.update(part)
    return state


def weights_digest(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint's weights: of its one file, or of its shards' bytes in index order."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE if (path / WEIGHTS_FILE).exists() else path / INDEX_FILE
    if path.name != INDEX_FILE:
        return _sha256_file(path)
    digest = hashlib.sha256()
    for file in _read_index(path)[1]:
        with open(path.parent / file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_card(path: Path) -> ModelCard:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PrunelabError(f"checkpoint metadata {path} is unreadable ({exc}); "
                            f"copy it again from where the checkpoint was written") from None
    return ModelCard.from_json(raw, f"checkpoint metadata {path}")


def _unreadable(path: Path, exc: Exception) -> str:
    """One line for a checkpoint torch will not read safely: which global was blocked, if that is
    why, never torch's advice to load it with weights_only=False (that runs the file's code)."""
    text = str(exc)
    blocked = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if blocked:
        return (f"checkpoint {path} holds pickled objects beyond tensors (it needs the global "
                f"{blocked[1]}), and prunelab runs no code from a checkpoint; save a plain state_dict "
                f"of tensors (torch.save(model.state_dict(), ...)) or safetensors")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln]
    return f"cannot read checkpoint {path} as a tensor file: {lines[0] if lines else type(exc).__name__}"


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise PrunelabError(_unreadable(path, exc)) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PrunelabError(f"checkpoint {path} holds no state dict of tensors")
    return _fold_prune_masks({k.removeprefix("module."): v for k, v in obj.items()}, path)


def _fold_prune_masks(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved while `torch.nn.utils.prune` was applied holds `X_orig` and `X_mask`
    for each pruned tensor X: fold them into X = X_orig * X_mask, the pruned network it is."""
    out = dict(state)
    for key in [k for k in state if k.endswith("_orig")]:
        base = key.removesuffix("_orig")
        mask = state.get(base + "_mask")
        if mask is None:
            continue
        if mask.shape != state[key].shape:
            raise PrunelabError(f"checkpoint {path}: {base}_mask is {tuple(mask.shape)} but {key} is "
                                f"{tuple(state[key].shape)}; save the pruned model again")
        odd = mask[(mask != 0) & (mask != 1)]
        if odd.numel():
            raise PrunelabError(f"checkpoint {path}: {base}_mask holds {odd.numel():,} values that are not "
                                f"0 or 1 (e.g. {float(odd[0]):g}), so it is no pruning mask; save the pruned "
                                f"model again")
        out[base] = state[key] * mask.to(state[key].dtype)
        del out[key], out[base + "_mask"]
    return out


def _check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Every floating tensor finite: one NaN or inf weight makes every measured number meaningless."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise PrunelabError(f"checkpoint {path}: tensor {name} holds {bad} NaN/inf value"
                                f"{'s' if bad > 1 else ''}; use a checkpoint saved before training "
                                f"went wrong")


def _check_head(card: ModelCard, state: dict[str, torch.Tensor], path: Path) -> None:
    """The card's class and channel counts against the weights, before a model that size is built."""
    info = card.info
    for key, dim, said, what in ((f"{info.classifier}.weight", 0, card.num_classes, "num_classes"),
                                 (f"{info.stem}.weight", 1, card.in_channels, "in_channels")):
        if key in state and state[key].dim() > dim and int(state[key].shape[dim]) != said:
            raise PrunelabError(f"checkpoint {path}: its metadata says {what} {said} but {key} is "
                                f"{tuple(state[key].shape)}; correct {what} in {META_FILE}")


def _check_float(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: Path) -> None:
    """Floating-point weights where the network has them: integer (quantized) values would be cast
    to float and measured as if they were the trained network."""
    ints = [k for k in own if k in state and own[k].is_floating_point() and not state[k].is_floating_point()]
    if ints:
        dtype = str(state[ints[0]].dtype).removeprefix("torch.")
        which = (f"tensors {ints[0]} and {len(ints) - 1} more hold" if len(ints) > 1
                 else f"tensor {ints[0]} holds")
        raise PrunelabError(f"checkpoint {path}: {which} {dtype} values, not floating point weights; save "
                            f"the float network (dequantize it first)")


def _fit(model: nn.Module, state: dict[str, torch.Tensor], name: str, path: Path, carded: bool) -> None:
    """Load `state` strictly into `model`, or explain in one line why it does not fit (`carded`: the
    name came from the checkpoint's own metadata, which --model cannot change)."""
    own = model.state_dict()
    _check_float(own, state, path)
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
        fix = (f"its {META_FILE} names '{name}', so the weights were saved from another network or "
               f"damaged: save them again" if carded else "pass the --model it was trained as")
        raise PrunelabError(f"checkpoint {path} does not fit model '{name}': {'; '.join(parts)}; {fix}")
    model.load_state_dict(state, strict=False)


def load_checkpoint(path: str | os.PathLike, model_name: str | None = None
                    ) -> tuple[nn.Module, ModelCard]:
    """Rebuild a model from a checkpoint without executing any code from it.

    Args:
        path: a prunelab checkpoint folder (one `model.safetensors`, or shards with their
            `model.safetensors.index.json`), one of those files, or a foreign torch file
            (`.th/.pt/.pth`, read with `weights_only=True`; a `state_dict` entry and `module.`
            prefixes are handled).
        model_name: registry name; required for foreign files, checked against prunelab metadata.

    Returns:
        (model in eval mode on the CPU, its card).
    """
    path = Path(path)
    if path.is_dir():
        path = path / (INDEX_FILE if (path / INDEX_FILE).exists() and not (path / WEIGHTS_FILE).exists()
                       else WEIGHTS_FILE)
    if not path.exists():
        raise PrunelabError(f"checkpoint {path} does not exist; pass a folder or file written by "
                            f"'prunelab train' or a .th/.pt state dict")
    if path.name == INDEX_FILE or path.suffix == ".safetensors":
        meta_path = path.with_name(META_FILE) if path.name in (WEIGHTS_FILE, INDEX_FILE) else \
            path.with_suffix(".json")
        if not meta_path.exists():
            raise PrunelabError(f"checkpoint {path} has no metadata file {meta_path}")
        card = _read_card(meta_path)
        if model_name and model_name != card.model:
            raise PrunelabError(f"checkpoint {path} is a '{card.model}', not a '{model_name}'; "
                                f"drop --model or pass --model {card.model}")
        if path.name == INDEX_FILE:
            state = _read_shards(path)
        else:
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
        card = ModelCard(model=model_name, num_classes=int(head.shape[0]), in_channels=int(stem.shape[1]),
                         mean=info.mean, std=info.std, source=str(path), input_size=info.input_size)
    else:
        raise PrunelabError(f"checkpoint {path}: unknown file type '{path.suffix}'; "
                            f"use a .safetensors written by prunelab or a .th/.pt/.pth file")
    _check_finite(state, path)
    _check_head(card, state, path)
    model = create_model(card.model, card.num_classes, card.in_channels)
    _fit(model, state, card.model, path, carded=path.suffix not in TORCH_SUFFIXES)
    return model.eval(), card.with_source(str(path))
