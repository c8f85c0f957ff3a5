"""Models: the registry of architectures (one family per file in `zoo/`) and the model card."""

from .card import ModelCard
from .init import residual_branch_ends, zero_init_residual
from .registry import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODELS,
    TORCHVISION_PREFIX,
    ModelInfo,
    create_model,
    model_info,
    model_names,
    register_model,
)
from .zoo.cifar import BasicBlock, CifarResNet, PadShortcut

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN", "IMAGENET_STD", "MODELS", "TORCHVISION_PREFIX",
           "BasicBlock", "CifarResNet", "ModelCard", "ModelInfo", "PadShortcut", "create_model", "model_info",
           "model_names", "register_model", "residual_branch_ends", "zero_init_residual"]
