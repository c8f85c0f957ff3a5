"""Wanda (Sun et al. 2023): a weight matters as much as it moves its layer's output, |w| times the
size of the input it multiplies. Each weight is scored |w_ij| · RMS(x_j), the root mean square of
its input column over calibration images (every position of every image, as second-order methods
see a conv's inputs), with no update of the weights kept.

The score is magnitude read through the inputs: the pruner scales every weight by its input's RMS
and lets the magnitude criterion and an allocation do the rest. Wanda's paper compares weights
within each output; here the comparison group is the layer (`wanda`) or the network (`wanda-global`),
the allocations every other mask method uses."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import PrunelabError
from ..base import PRUNERS, PruneContext, ScoredPruner
from ..obs import as_columns, check_reads_inputs, from_columns
from .global_ import GLOBAL
from .l1 import L1
from .layerwise import LAYERWISE


class InputScaled(ScoredPruner):
    """A scored pruner whose criterion reads every weight times the RMS of its input column."""

    needs_calibration = True

    def check_model(self, model: nn.Module, ctx: PruneContext) -> None:
        check_reads_inputs(model, ctx.prunable(model), self.name)

    def weights(self, model: nn.Module, ctx: PruneContext) -> dict[str, torch.Tensor]:
        weights = super().weights(model, ctx)
        if ctx.calibration is None:
            raise PrunelabError(f"method '{self.name}' needs calibration images (the training split); "
                                f"it runs in a sweep or an export with --data")
        rms = ctx.calibration().input_rms(model, list(weights))
        return {name: from_columns(as_columns(w) * rms[name].to(w.device, w.dtype), w.shape)
                for name, w in weights.items()}


PRUNERS.register(InputScaled("wanda", L1, LAYERWISE, "lowest |w| x RMS of its input on calibration images "
                             "(Wanda, Sun et al. 2023), same fraction per layer; weights kept as they are"))
PRUNERS.register(InputScaled("wanda-global", L1, GLOBAL, "lowest |w| x RMS of its input on calibration "
                             "images (Wanda) across all layers under one threshold"))
