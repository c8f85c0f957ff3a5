"""The model card: what a checkpoint or an exported file says about the network it holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .. import __version__
from ..errors import PrunelabError
from .registry import ModelInfo, model_info

REF_KEYS = ("model", "num_classes", "in_channels", "mean", "std", "classes")  # what rebuilds and feeds it
MAX_CLASSES, MAX_CHANNELS, MAX_SIZE = 1_000_000, 1024, 16384  # beyond these a card is a typo, not a network


@dataclass(frozen=True)
class ModelCard:
    """Everything known about one network: enough to rebuild, normalise and describe it.

    Attributes:
        model: registry name; `info` is what that architecture declares (classifier, stem).
        num_classes, in_channels: classifier outputs and image channels.
        mean, std: input normalisation, per channel, in [0, 1] pixel units.
        classes: class names, if known.
        input_size: image height = width the network was trained on (None: not recorded).
        data, epochs, top1, recipe: how it was trained (top-1 in percent, on `data`'s test split).
        source: the file its weights were read from.
        training: how the training went, where prunelab trained it: the training images, the
            time plan, the clock (wall and CPU seconds), the commit, further measured accuracies.
    """

    model: str
    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] | None = None
    input_size: int | None = None
    data: str | None = None
    epochs: int | None = None
    top1: float | None = None
    recipe: dict = field(default_factory=dict)
    source: str | None = None
    training: dict = field(default_factory=dict)
    prunelab_version: str = __version__
    # What an unregistered module was found to declare (`models.module.card_for_module`); never
    # written to a file: a registered architecture's declaration comes from the registry.
    declared: ModelInfo | None = field(default=None, compare=False, repr=False)

    @property
    def info(self) -> ModelInfo:
        return self.declared or model_info(self.model)

    def with_source(self, source: str) -> ModelCard:
        return replace(self, source=self.source or source)

    def to_json(self) -> dict:
        """Every field (a checkpoint's model.json)."""
        out = asdict(self)
        out.pop("declared")
        out["mean"], out["std"] = list(self.mean), list(self.std)
        out["classes"] = list(self.classes) if self.classes is not None else None
        return out

    def ref_json(self) -> dict:
        """What rebuilds and feeds the network (the header of an exported file)."""
        return {k: v for k, v in self.to_json().items() if k in REF_KEYS}

    @classmethod
    def from_json(cls, raw: dict, where: str = "model card") -> ModelCard:
        """Read either form back; keys of a newer prunelab are ignored, missing optional ones default."""
        try:
            known = {f: raw[f] for f in cls.__dataclass_fields__ if f in raw}
            known["num_classes"], known["in_channels"] = int(raw["num_classes"]), int(raw["in_channels"])
            known["mean"], known["std"] = tuple(raw["mean"]), tuple(raw["std"])
            if known.get("classes") is not None:
                known["classes"] = tuple(known["classes"])
            if known.get("input_size") is not None:
                known["input_size"] = int(known["input_size"])
            card = cls(model=raw["model"], **{k: v for k, v in known.items() if k != "model"})
        except (KeyError, TypeError, ValueError) as exc:
            raise PrunelabError(f"{where} is unreadable ({type(exc).__name__}: {exc})") from None
        for what, value, top in (("num_classes", card.num_classes, MAX_CLASSES),
                                 ("in_channels", card.in_channels, MAX_CHANNELS),
                                 ("input_size", card.input_size or 1, MAX_SIZE)):
            if not 1 <= value <= top:
                raise PrunelabError(f"{where} says {what} {value}; it must be 1 to {top:,}: correct it")
        return card
