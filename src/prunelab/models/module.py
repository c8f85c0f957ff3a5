"""A card for the user's own module, in no registry: what a registered architecture declares (the
classifier to keep dense, the stem, the input size) found from the module and its data."""

from __future__ import annotations

from torch import nn

from ..errors import PrunelabError
from .card import ModelCard
from .registry import ModelInfo


def _unbuildable(num_classes: int, in_channels: int) -> nn.Module:
    raise PrunelabError("this network is the user's own module: prunelab cannot build it from a name; "
                        "pass the module itself (prunelab.export(model, ...))")


def card_for_module(module: nn.Module, image_shape: tuple[int, ...], classes: tuple[str, ...] | None = None,
                    classifier: str | None = None) -> ModelCard:
    """The card of `module`, a classifier taking images like the data's (`image_shape`, (C, H, W))
    as they come (already normalised: the card's normalisation is the identity); its channels are
    its first conv's, so data of other channels is refused by the usual check.

    Args:
        module: the network.
        image_shape: one image's (C, H, W), from the data.
        classes: class names, where the data has them.
        classifier: the module name of the final classifier; by default the last `nn.Linear`.
    """
    modules = dict(module.named_modules())
    layers = [name for name, m in modules.items() if isinstance(m, nn.Conv2d | nn.Linear)]
    if not layers:
        raise PrunelabError(f"{type(module).__name__} has no nn.Conv2d or nn.Linear layer: nothing to prune")
    if classifier is None:
        linear = [name for name in layers if isinstance(modules[name], nn.Linear)]
        if not linear:
            raise PrunelabError(f"{type(module).__name__} has no nn.Linear layer to take as its classifier; "
                                f"name the module that gives the logits (classifier='...')")
        classifier = linear[-1]
    elif classifier not in modules or not isinstance(modules[classifier], nn.Conv2d | nn.Linear):
        raise PrunelabError(f"classifier '{classifier}' is not a Linear or Conv2d module of "
                            f"{type(module).__name__}; its layers: {', '.join(layers[-5:])}")
    head = modules[classifier]
    num_classes = head.out_features if isinstance(head, nn.Linear) else head.out_channels
    stem = modules[layers[0]]
    channels = stem.in_channels if isinstance(stem, nn.Conv2d) else image_shape[0]
    size = image_shape[-1] if image_shape[-1] == image_shape[-2] else None
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    info = ModelInfo(name, classifier, layers[0], (0.0,) * channels, (1.0,) * channels,
                     f"the user's {type(module).__name__}", _unbuildable, size)
    return ModelCard(model=name, num_classes=num_classes, in_channels=channels, mean=info.mean, std=info.std,
                     classes=classes, input_size=size, declared=info)
