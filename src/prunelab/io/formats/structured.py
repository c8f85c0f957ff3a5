"""A channel-pruned model as one safetensors file whose header carries the architecture spec
(channel counts) and the model card as JSON: no pickled modules."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ...errors import PrunelabError
from ...models import ModelCard
from ...pruning.spec import architecture_spec, build_from_spec
from ..atomic import save_tensors
from . import FORMATS, Format


def _contents(model: nn.Module, card: ModelCard) -> tuple[dict, dict]:
    spec = architecture_spec(model, card.info)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"prunelab_spec": json.dumps(spec), "prunelab_model": json.dumps(card.ref_json())}
    return state, meta


def save_structured(path: str | os.PathLike, model: nn.Module, card: ModelCard) -> int:
    """Write a channel-pruned model as one safetensors file whose header carries the architecture
    spec (channel counts) and the model card as JSON: no pickled modules. Returns bytes."""
    state, meta = _contents(model, card)
    path = Path(path)
    save_tensors(path, state, meta)
    return path.stat().st_size


def structured_bytes(model: nn.Module, card: ModelCard) -> int:
    """The size `save_structured` would write, from the same bytes made in memory."""
    state, meta = _contents(model, card)
    return len(save(state, metadata=meta))


def load_structured(path: str | os.PathLike) -> tuple[nn.Module, ModelCard]:
    """Rebuild a channel-pruned model from `save_structured`'s file, eval mode."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise PrunelabError(f"cannot read {path} as safetensors: {exc}") from None
    if "prunelab_spec" not in meta:
        raise PrunelabError(f"{path} has no prunelab architecture spec in its header; "
                            f"it was not written by 'prunelab export --format structured'")
    model = build_from_spec(json.loads(meta["prunelab_spec"]))
    model.load_state_dict(state)
    return model.eval(), ModelCard.from_json(json.loads(meta["prunelab_model"]), f"the header of {path}")


class Structured(Format):
    name = "structured"
    description = "safetensors of the smaller network + its channel spec (channel methods)"
    channels = True
    refusal = ("format 'structured' is for channel methods (channels-layerwise, channels-global); "
               "use --format sparse, sparse-fp16 or onnx")

    def write(self, path: Path, model: nn.Module, card: ModelCard, input_shape: tuple[int, ...]) -> int:
        return save_structured(path, model, card)

    def size_of(self, model: nn.Module, card: ModelCard) -> int:
        return structured_bytes(model, card)

    def read(self, path: Path) -> tuple[nn.Module, ModelCard]:
        return load_structured(path)


FORMATS.register(Structured())
