"""Model registry: CIFAR ResNets, the ResNet-50 CIFAR variant, a small CNN and torchvision classifiers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PrunelabError, unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class ModelInfo:
    """What a model declares about itself.

    Attributes:
        name: registry name.
        classifier: module name of the final classifier (excluded from pruning by default).
        stem: module name of the first layer.
        mean, std: the input normalisation the model is trained with, per channel.
        description: one line for listings.
    """

    name: str
    classifier: str
    stem: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    build: Callable[[int, int], nn.Module]  # (num_classes, in_channels) -> module


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, classifier: str, stem: str, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                   description: str = ""):
    """Decorator: add a builder `(num_classes, in_channels) -> nn.Module` to the registry."""

    def wrap(build):
        info = ModelInfo(name, classifier, stem, tuple(mean), tuple(std), description)
        _REGISTRY[name] = _Entry(info, build)
        return build

    return wrap


# ---------------------------------------------------------------- CIFAR ResNets (He et al. 2016)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad channels; no parameters."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (option A) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes = stride != 1 or in_planes != planes
        self.shortcut = PadShortcut(planes - in_planes) if changes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: 16/32/64 channels, strides 1/2/2, parameter names as
    in akamaster/pytorch_resnet_cifar10 (conv1, bn1, layer1..3, linear)."""

    def __init__(self, n: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes, layers = 16, []
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(planes, width, stride if i == 0 else 1))
                planes = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)


for _depth in (20, 32, 44, 56, 110):
    register_model(
        f"resnet{_depth}", classifier="linear", stem="conv1", mean=IMAGENET_MEAN, std=IMAGENET_STD,
        description=f"CIFAR ResNet-{_depth} (option-A shortcuts; loads akamaster checkpoints)",
    )(lambda num_classes, in_channels, n=(_depth - 2) // 6: CifarResNet(n, num_classes, in_channels))


# ---------------------------------------------------------------- ResNet-50, CIFAR variant


@register_model("resnet50", classifier="fc", stem="conv1",
                description="ResNet-50 CIFAR variant: 3x3 stride-1 stem, no max-pool, [3,4,6,3]")
def resnet50_cifar(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's ResNet-50 with the stem of the classic CIFAR study (23,520,842 params at 10 classes)."""
    from torchvision.models import resnet50

    net = resnet50(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net


# ---------------------------------------------------------------- small CNN (the embedded demo)


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers, global pooling and a linear classifier; for tiny images."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


register_model("smallcnn", classifier="fc", stem="conv1", mean=(0.5,), std=(0.5,),
               description="small 3-layer CNN for the embedded digits demo")(
    lambda num_classes, in_channels: SmallCNN(num_classes, in_channels))


# ---------------------------------------------------------------- torchvision classifiers

TORCHVISION_PREFIX = "torchvision."

# Each torchvision family declares its classifier module (no guessing from shapes).
_TV_CLASSIFIERS = (
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
_TV_STEMS = (
    (r"resnet|resnext|wide_resnet|googlenet|shufflenet", "conv1"),
    (r"regnet", "stem.0"),
    (r"vgg|alexnet|squeezenet|densenet", "features.0"),
    (r"mobilenet|efficientnet|mnasnet", "features.0.0" ),
    (r"convnext", "features.0.0"),
    (r"vit_", "conv_proj"),
    (r"swin", "features.0.0"),
    (r"inception", "Conv2d_1a_3x3.conv"),
    (r"maxvit", "stem.0.0"),
)


def _torchvision_names() -> list[str]:
    import torchvision

    return [TORCHVISION_PREFIX + n for n in torchvision.models.list_models(module=torchvision.models)]


def _declared(table, name: str) -> str:
    for pattern, module in table:
        if re.match(pattern, name):
            return module
    raise PrunelabError(f"torchvision model '{name}' has no declared classifier/stem in prunelab")


def _torchvision_entry(name: str) -> _Entry:
    import torchvision

    tv_name = name[len(TORCHVISION_PREFIX):]
    if name not in _torchvision_names():
        raise unknown("model", name, model_names())
    info = ModelInfo(name, _declared(_TV_CLASSIFIERS, tv_name), _declared(_TV_STEMS, tv_name),
                     IMAGENET_MEAN, IMAGENET_STD, f"torchvision {tv_name} (random init)")

    def build(num_classes: int, in_channels: int) -> nn.Module:
        if in_channels != 3:
            raise PrunelabError(f"{name} takes 3-channel images, the data has {in_channels}")
        return torchvision.models.get_model(tv_name, weights=None, num_classes=num_classes)

    return _Entry(info, build)


# ---------------------------------------------------------------- public API


def model_names(include_torchvision: bool = True) -> list[str]:
    """All registry names; torchvision classifiers are listed as 'torchvision.<name>'."""
    names = sorted(_REGISTRY)
    return names + _torchvision_names() if include_torchvision else names


def _entry(name: str) -> _Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TORCHVISION_PREFIX):
        return _torchvision_entry(name)
    raise unknown("model", name, model_names())


def model_info(name: str) -> ModelInfo:
    """The declared metadata of a registered model (classifier, stem, normalisation)."""
    return _entry(name).info


def residual_branch_ends(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The batch norm that closes each residual branch, just before the add: bn3 of torchvision's
    Bottleneck, bn2 of its BasicBlock and of the CIFAR ResNets' BasicBlock."""
    from torchvision.models.resnet import BasicBlock as TorchvisionBasic
    from torchvision.models.resnet import Bottleneck

    ends = []
    for m in model.modules():
        if isinstance(m, Bottleneck):
            ends.append(m.bn3)
        elif isinstance(m, BasicBlock | TorchvisionBasic):
            ends.append(m.bn2)
    return ends


def zero_init_residual(model: nn.Module, name: str) -> None:
    """Start every residual branch at zero (its last batch norm's scale 0), so each block begins as
    the identity (Goyal et al. 2017): deep ResNets then train stably at large learning rates."""
    ends = residual_branch_ends(model)
    if not ends:
        raise PrunelabError(f"model '{name}' has no residual branches to zero-initialise; "
                            f"drop zero_init_residual from the recipe")
    with torch.no_grad():
        for bn in ends:
            bn.weight.zero_()


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
    return _entry(name).build(num_classes, in_channels)
