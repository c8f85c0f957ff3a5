"""Iterative pruning (`+iter`): each level prunes the previous level's retrained network further
(masks only grow; a channel chain removes channels from the smaller network), then retrains; one
chain yields the whole curve and resumes from the last level it saved."""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ...errors import PrunelabError
from ...pruning import Pruned, Pruner
from ...pruning.masks import Masks, prunable_weights
from ...training.fit import write_whole
from ..base import RECOVERIES, Bench, PointFiles, Recovery
from ..config import TRAINING_SETTINGS
from ..retrain import retrain


def read_chain_state(path, device: str = "cpu") -> tuple[dict, Masks]:
    """A mask chain's state file: (the model's state dict, the masks at that level)."""
    try:
        state = load_file(str(path), device=device)
    except (OSError, SafetensorError) as exc:
        raise PrunelabError(f"{path} cannot be read as a chain's state ({exc}); delete it to retrain "
                            f"that level of the chain again") from None
    masks = {k.removeprefix("mask::"): v.bool() for k, v in state.items() if k.startswith("mask::")}
    return {k: v for k, v in state.items() if not k.startswith("mask::")}, masks


def _save_chain_state(path, model, masks: Masks) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state.update({f"mask::{k}": m.cpu().to(torch.uint8) for k, m in masks.items()})
    write_whole(path, save(state), path.with_name("state.tmp"))  # bytes first: a full disk is one line


class Iterative(Recovery):
    name = "iter"
    description = "iterative: prune the last level's retrained network further, retrain"
    trains = True
    chained = True
    settings = TRAINING_SETTINGS

    def refusal(self, pruner: Pruner) -> str | None:
        if pruner.fixed_level is not None:
            return (f"'{pruner.name}+iter': N:M has one fixed sparsity, so it has no schedule; use "
                    f"'{pruner.name}+ft' or '{pruner.name}+bn'")
        return None

    def keeps_model(self, pruner: Pruner) -> bool:
        return pruner.shrinks  # a mask chain's state file is the point's model already

    def apply(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles) -> Pruned:
        below = [lv for lv in bench.levels if lv < level]
        if pruner.shrinks:
            return self._channels(pruner, level, seed, bench, files, below)
        prior = None
        bench.fresh()
        for lv in reversed(below):  # the highest saved level below; a gap starts again from dense
            if files.chain(lv).exists():
                state, prior = read_chain_state(files.chain(lv), str(bench.device))
                bench.model.load_state_dict(state)
                break
        pruned = pruner.prune(bench.model, level, bench.ctx.but(seed=seed, prior=prior))
        retrain(pruned.model, bench, seed, files, masks=pruned.masks)
        _save_chain_state(files.chain(level), pruned.model, pruned.masks)
        return pruned

    def _channels(self, pruner: Pruner, level: float, seed: int, bench: Bench, files: PointFiles,
                  below: list[float]) -> Pruned:
        """Remove channels from the retrained network of the highest kept level below (the dense
        one at the start) until `level` of the *original* prunable weights are gone."""
        from ...io.formats.structured import load_structured

        start = bench.fresh()
        original = {k: w.numel() for k, w in prunable_weights(start, bench.ctx.card.info.classifier).items()}
        for lv in reversed(below):
            if files.kept(lv, "structured").exists():
                start = load_structured(files.kept(lv, "structured"))[0].to(bench.device)
                break
        pruned = pruner.prune(start, level, bench.ctx.but(seed=seed, original=original))
        retrain(pruned.model, bench, seed, files)
        return pruned


RECOVERIES.register(Iterative())
