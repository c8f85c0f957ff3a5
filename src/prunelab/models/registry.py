"""The model registry: each architecture declares its classifier, stem and input normalisation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import PrunelabError, unknown
from ..registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
TORCHVISION_PREFIX = "torchvision."


@dataclass(frozen=True)
class ModelInfo:
    """What an architecture declares about itself.

    Attributes:
        name: registry name.
        classifier: module name of the final classifier (excluded from pruning by default).
        stem: module name of the first layer.
        mean, std: the input normalisation the model is trained with, per channel (the default
            for checkpoints that do not record their own).
        description: one line for listings.
        build: (num_classes, in_channels) -> a freshly initialised module.
        input_size: the image height = width it is made for (CIFAR: 32), where it has one; a
            checkpoint that records none is checked against this.
    """

    name: str
    classifier: str
    stem: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str
    build: Callable[[int, int], nn.Module]
    input_size: int | None = None


MODELS: Registry[ModelInfo] = Registry("model", "prunelab.models.zoo")


def register_model(name: str, *, classifier: str, stem: str, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                   description: str = "", input_size: int | None = None):
    """Decorator: add a builder `(num_classes, in_channels) -> nn.Module` to the registry."""

    def wrap(build):
        MODELS.register(ModelInfo(name, classifier, stem, tuple(mean), tuple(std), description, build,
                                  input_size))
        return build

    return wrap


def model_names(include_torchvision: bool = True) -> list[str]:
    """All registry names; torchvision classifiers are listed as 'torchvision.<name>'."""
    from .zoo.torchvision import torchvision_names

    # Families matched by pattern ('torchvision.<name>', 'timm.<name>') are not names of models.
    names = sorted(n for n in MODELS.names() if not n.startswith(TORCHVISION_PREFIX) and "<" not in n)
    return names + torchvision_names() if include_torchvision else names


def model_info(name: str) -> ModelInfo:
    """The declared metadata of a registered model (classifier, stem, normalisation)."""
    try:
        return MODELS.get(name)
    except PrunelabError:
        raise unknown("model", name, model_names()) from None


def create_model(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Build a freshly initialised model by registry name.

    Args:
        name: registry name (`model_names()`), e.g. "resnet56", "resnet50", "torchvision.resnet18".
        num_classes: size of the classifier output.
        in_channels: image channels (3 for CIFAR, 1 for digits).

    Returns:
        The model in training mode, on the CPU.
    """
    if num_classes < 1:
        raise PrunelabError(f"num_classes must be at least 1, got {num_classes}")
    return model_info(name).build(num_classes, in_channels)


def declared(table: tuple[tuple[str, str], ...], name: str) -> str:
    """The module a (pattern, module) table declares for `name`, for families of architectures."""
    for pattern, module in table:
        if re.match(pattern, name):
            return module
    raise PrunelabError(f"torchvision model '{name}' has no declared classifier/stem in prunelab")
