"""Every torchvision classifier as 'torchvision.<name>', each family declaring its classifier and stem."""

from __future__ import annotations

import re

from torch import nn

from ...errors import PrunelabError
from ..registry import IMAGENET_MEAN, IMAGENET_STD, MODELS, TORCHVISION_PREFIX, ModelInfo, declared

CLASSIFIERS = (
    (r"resnet|resnext|wide_resnet|regnet|googlenet|inception|shufflenet", "fc"),
    (r"vgg|alexnet", "classifier.6"),
    (r"mobilenet_v2|efficientnet|mnasnet|squeezenet", "classifier.1"),
    (r"mobilenet_v3", "classifier.3"),
    (r"densenet", "classifier"),
    (r"convnext", "classifier.2"),
    (r"vit_", "heads.head"),
    (r"swin", "head"),
    (r"maxvit", "classifier.5"),
)
STEMS = (
    (r"resnet|resnext|wide_resnet|googlenet|shufflenet", "conv1"),
    (r"regnet", "stem.0"),
    (r"vgg|alexnet|squeezenet|densenet", "features.0"),
    (r"mobilenet|efficientnet|mnasnet", "features.0.0"),
    (r"convnext", "features.0.0"),
    (r"vit_", "conv_proj"),
    (r"swin", "features.0.0"),
    (r"inception", "Conv2d_1a_3x3.conv"),
    (r"maxvit", "stem.0.0"),
)


def torchvision_names() -> list[str]:
    import torchvision

    return [TORCHVISION_PREFIX + n for n in torchvision.models.list_models(module=torchvision.models)]


def _entry(match: re.Match) -> ModelInfo:
    import torchvision

    name, tv_name = match[0], match[1]
    if name not in torchvision_names():
        raise PrunelabError(f"unknown model '{name}'")

    def build(num_classes: int, in_channels: int) -> nn.Module:
        if in_channels != 3:
            raise PrunelabError(f"{name} takes 3-channel images, the data has {in_channels}")
        return torchvision.models.get_model(tv_name, weights=None, num_classes=num_classes)

    return ModelInfo(name, declared(CLASSIFIERS, tv_name), declared(STEMS, tv_name), IMAGENET_MEAN,
                     IMAGENET_STD, f"torchvision {tv_name} (random init)", build)


MODELS.pattern(r"torchvision\.(.+)", "torchvision.<name>", _entry)
