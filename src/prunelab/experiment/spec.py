"""Specs parsed once at the edge: a method is '<pruner>[+<recovery>]', levels are a grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PrunelabError
from ..pruning import PRUNERS, Pruner
from ..pruning.masks import check_sparsity
from ..pruning.schedules import geometric
from ..quant import QuantSpec
from ..recovery import RECOVERIES, Recovery
from .store import DENSE


@dataclass(frozen=True)
class MethodSpec:
    """A sweep method, resolved: the pruner (None for the dense baseline), the recovery, and the
    quantization of the recovered weights (None: float weights).

    Attributes:
        text: as stored and shown ('global+iter', 'global+iter@kmeans4'; 'dense' for the baseline).
    """

    text: str
    pruner: Pruner | None
    recovery: Recovery
    quant: QuantSpec | None = None

    @classmethod
    def parse(cls, text: str, allow_dense: bool = False) -> MethodSpec:
        """'global+iter@kmeans4' -> the global pruner, the iterative recovery and 4-bit k-means
        codebooks, or a one-line error (unknown names with suggestions, or a recovery that cannot
        follow that pruner)."""
        if allow_dense and text == DENSE:
            return cls(DENSE, None, RECOVERIES.get("none"))
        head, at, quant = text.partition("@")
        name, _, recovery_name = head.partition("+")
        pruner = PRUNERS.get(name)
        recovery = RECOVERIES.get(recovery_name or "none")
        reason = recovery.refusal(pruner)
        if reason:
            raise PrunelabError(reason)
        if at and pruner.shrinks:
            raise PrunelabError(f"'{text}': quantizing a channel-pruned network is not supported; quantize "
                                f"a mask method (e.g. global@{quant}), or export the channel method as onnx")
        if not at:
            return cls(text, pruner, recovery)
        spec = QuantSpec.parse(quant)
        return cls(f"{head}@{spec.text}", pruner, recovery, spec)  # one spelling: 'kmeans04' is 'kmeans4'

    @property
    def base(self) -> MethodSpec:
        """The method whose network this one quantizes (itself if it does not)."""
        if self.quant is None:
            return self
        return MethodSpec(self.text.partition("@")[0], self.pruner, self.recovery)

    def quantized(self, quant: QuantSpec) -> MethodSpec:
        """This method with its weights quantized by `quant`."""
        return MethodSpec(f"{self.base.text}@{quant.text}", self.pruner, self.recovery, quant)

    @property
    def is_dense(self) -> bool:
        return self.pruner is None

    @property
    def seeded(self) -> bool:
        """Its results depend on the seed: a random criterion, or retraining."""
        return not self.is_dense and (self.pruner.stochastic or self.recovery.trains
                                      or (self.quant is not None and self.quant.tuned))

    @property
    def keeps_model(self) -> bool:
        """Its model must be kept in the run folder: it cannot be rebuilt by pruning the checkpoint
        (a quantized method keeps its file only where its tables were fine-tuned; otherwise it is
        its base's network quantized again)."""
        if self.quant is not None:
            return self.quant.recovers
        return not self.is_dense and self.recovery.keeps_model(self.pruner)

    @property
    def reads_training_split(self) -> bool:
        """It reads training images after pruning: it retrains, re-estimates batch norm, or tunes
        (or recalibrates) its quantized tables."""
        return not self.is_dense and (self.recovery.trains or self.recovery.recalibrates
                                      or (self.quant is not None and self.quant.recovers))

    @property
    def from_checkpoint(self) -> bool:
        """Its model is the checkpoint pruned again: the dense baseline, and one-shot pruners that
        leave the weights they keep alone. Else it is a kept file, a chain's state, or (quantized)
        its base point's network."""
        return self.is_dense or not (self.recovery.trains or self.recovery.chained or self.keeps_model
                                     or self.quant is not None)

    def levels(self, grid: tuple[float, ...]) -> tuple[float, ...]:
        return (0.0,) if self.is_dense else self.pruner.levels(grid)


def parse_levels(text: str) -> tuple[float, ...]:
    """Parse sparsity levels: 'start:stop:step' (both ends included), 'geometric:P:K' (K rounds
    that each remove a fraction P of the remaining weights, for iterative pruning) or a comma list.

    Example: '0:1:0.05' -> (0.0, 0.05, ..., 1.0), the classic grid of 21 levels;
    'geometric:0.2:3' -> (0.2, 0.36, 0.488).
    """
    try:
        if text.startswith("geometric:"):
            _, fraction, rounds = text.split(":")
            values = list(geometric(int(rounds), check_sparsity(float(fraction), "fraction per round")))
        elif ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = int(np.floor((stop - start) / step + 1e-9))  # the last step may not pass stop
            values = [round(start + i * step, 6) for i in range(n + 1)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PrunelabError(f"levels '{text}' are not 'start:stop:step', 'geometric:P:K' or a comma "
                            f"list of numbers, e.g. 0:1:0.05, geometric:0.2:10 or 0,0.5,0.9") from None
    if not values:
        raise PrunelabError("no sparsity levels given; e.g. --levels 0:1:0.05")
    if not any(values):
        raise PrunelabError(f"levels '{text}' are all 0: nothing would be pruned; e.g. --levels 0:1:0.05 "
                            f"or geometric:0.2:10")
    for v in values:
        check_sparsity(v, f"level {v} in --levels '{text}'")
    return tuple(sorted(set(values)))


CLASSIC_LEVELS = parse_levels("0:1:0.05")
