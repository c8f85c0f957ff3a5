"""Channels removed, then every layer from the first that lost inputs on refitted by least squares
on calibration images (channel pruning with reconstruction: He et al. 2017, ThiNet): the structured
counterpart of second-order one-shot pruning, no retraining."""

from __future__ import annotations

from torch import nn

from ...errors import PrunelabError
from ..base import PRUNERS, ChannelAllocation, PruneContext, Pruned
from ..obs import check_reads_inputs
from .channels import CHANNELS_GLOBAL, CHANNELS_LAYERWISE, ChannelPruner
from .channels_group import GROUP_L1


class Reconstructed(ChannelPruner):
    """A channel pruner whose result is refitted to the dense network's layer outputs."""

    updates_weights = True
    needs_calibration = True

    def check_model(self, model: nn.Module, ctx: PruneContext) -> None:
        super().check_model(model, ctx)
        check_reads_inputs(model, ctx.prunable(model), self.name)

    def prune(self, model: nn.Module, level: float, ctx: PruneContext) -> Pruned:
        from ..reconstruction import reconstruct

        if ctx.calibration is None:
            raise PrunelabError(f"method '{self.name}' needs calibration images (the training split); "
                                f"it runs in a sweep or an export with --data")
        pruned = super().prune(model, level, ctx)  # `model` is left dense: channel pruners copy it
        reconstruct(model, pruned.model, pruned.structured.kept_outputs, ctx.calibration(), ctx.damp,
                    ctx.on_layer)
        return pruned


PRUNERS.register(Reconstructed("channels-rec", CHANNELS_LAYERWISE, GROUP_L1,
                               "channels-inner, then every layer whose inputs changed refitted by least "
                               "squares to the dense layer's output on calibration images", keep_stream=True))
PRUNERS.register(Reconstructed("channels-rec-global", CHANNELS_GLOBAL, GROUP_L1,
                               "channels-inner-global, then refitted by least squares as channels-rec",
                               keep_stream=True))


def register_inner_pair(name: str, allocation: ChannelAllocation, description: str) -> None:
    """Register `channels-NAME` (channels inside blocks by group L1, shared out by `allocation`)
    and its refitted twin `channels-rec-NAME`."""
    PRUNERS.register(ChannelPruner(f"channels-{name}", allocation, GROUP_L1, description, keep_stream=True))
    PRUNERS.register(Reconstructed(f"channels-rec-{name}", allocation, GROUP_L1,
                                   f"channels-{name}, then refitted by least squares as channels-rec",
                                   keep_stream=True))
