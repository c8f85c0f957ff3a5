"""Every timm classifier as 'timm.<name>' (when timm is installed: pip install 'prunelab[timm]'),
its classifier, stem, input size and normalisation read from timm's own model config."""

from __future__ import annotations

import re

from torch import nn

from ...errors import PrunelabError
from ..registry import MODELS, ModelInfo

TIMM_PREFIX = "timm."


def _timm():
    try:
        import timm
    except ImportError:
        raise PrunelabError("timm models need timm: pip install 'prunelab[timm]'") from None
    return timm


def _entry(match: re.Match) -> ModelInfo:
    timm, name, timm_name = _timm(), match[0], match[1]
    if not timm.is_model(timm_name):
        close = timm.list_models(f"*{timm_name[:6]}*")[:5]
        hint = f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
        raise PrunelabError(f"unknown model '{name}': timm has no '{timm_name}'{hint}")
    cfg = timm.get_pretrained_cfg(timm_name)
    if cfg is None or not cfg.classifier or not cfg.first_conv:
        raise PrunelabError(f"timm's config of '{timm_name}' declares no classifier or first conv; use "
                            f"prunelab.sweep(model, ...) with classifier= from Python")
    classifier = cfg.classifier if isinstance(cfg.classifier, str) else cfg.classifier[0]

    def build(num_classes: int, in_channels: int) -> nn.Module:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_channels)

    size = cfg.input_size[-1] if cfg.input_size and cfg.input_size[-1] == cfg.input_size[-2] else None
    return ModelInfo(name, classifier, cfg.first_conv, tuple(cfg.mean), tuple(cfg.std),
                     f"timm {timm_name} (random init)", build, size)


MODELS.pattern(r"timm\.(.+)", "timm.<name>", _entry)
