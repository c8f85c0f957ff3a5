"""Channel-pruned models without pickle: the prunable option-A shortcut and the architecture spec
(channel counts as JSON) that rebuilds a smaller model. Needs no Torch-Pruning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PrunelabError
from ..models import ModelInfo, PadShortcut, create_model

SPEC_FORMAT = "prunelab-structured/1"


class ChannelMapShortcut(nn.Module):
    """Option-A shortcut that survives channel pruning: subsample by `stride`, then output channel j
    is input channel `index[j]`, or zero where `index[j] == in_channels`.

    Built from a `PadShortcut` it computes exactly the same thing (the zero padding is index
    `in_channels`). Unlike it, its input and output channels can be removed independently: removing
    an input channel turns the outputs it fed into zeros (which is what removing a channel means
    everywhere else), removing an output channel drops it. So the shortcut couples nothing across
    stages, as the arithmetic demands; the identity shortcuts and the adds inside a stage are
    coupled by Torch-Pruning's graph as usual.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.stride = stride
        self.register_buffer("index", torch.full((out_channels,), in_channels, dtype=torch.long))

    @classmethod
    def from_pad(cls, pad: PadShortcut, in_channels: int) -> ChannelMapShortcut:
        """The shortcut equal to `pad` for inputs of `in_channels` channels."""
        half = pad.extra // 2
        out = cls(in_channels, in_channels + pad.extra)
        out.index[half:half + in_channels] = torch.arange(in_channels)
        return out

    @property
    def out_channels(self) -> int:
        return len(self.index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, 1)).index_select(1, self.index)  # channel in_channels is zero


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted `name` of `model`, in place of what was there."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def make_prunable(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """Replace every `PadShortcut` of `model` (in place) by the equal `ChannelMapShortcut`."""
    pads = {name: m for name, m in model.named_modules() if isinstance(m, PadShortcut)}
    if not pads:
        return model
    channels: dict[str, int] = {}

    def record(name):
        def hook(module, args):
            channels[name] = args[0].shape[1]
        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in pads.items()]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    for name, pad in pads.items():  # a PadShortcut holds no tensor: the new one goes where the input is
        set_module(model, name, ChannelMapShortcut.from_pad(pad, channels[name]).to(example_input.device))
    return model


# ---------------------------------------------------------------- spec: rebuild a pruned model without pickle


def architecture_spec(model: nn.Module, info: ModelInfo) -> dict:
    """The shapes that make a channel- or block-pruned model: registry name plus every conv, batch
    norm, linear and option-A shortcut with its channel counts, and every identity where the
    unpruned architecture has something else (a removed residual block; JSON-serialisable, no code)."""
    classifier = model.get_submodule(info.classifier)
    stem = model.get_submodule(info.stem)
    with torch.device("meta"):  # its module types only: no weights allocated or initialised
        unpruned = dict(create_model(info.name, classifier.out_features, stem.in_channels).named_modules())
    modules = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            modules[name] = {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels,
                             "kernel": list(m.kernel_size), "stride": list(m.stride),
                             "padding": list(m.padding), "dilation": list(m.dilation),
                             "groups": m.groups, "bias": m.bias is not None}
        elif isinstance(m, nn.BatchNorm2d):
            modules[name] = {"type": "BatchNorm2d", "num_features": m.num_features, "eps": m.eps,
                             "momentum": m.momentum, "affine": m.affine}
        elif isinstance(m, nn.Linear):
            modules[name] = {"type": "Linear", "in": m.in_features, "out": m.out_features,
                             "bias": m.bias is not None}
        elif isinstance(m, ChannelMapShortcut):
            modules[name] = {"type": "ChannelMapShortcut", "in": m.in_channels, "out": m.out_channels,
                             "stride": m.stride}
        elif isinstance(m, nn.Identity) and not isinstance(unpruned.get(name), nn.Identity):
            modules[name] = {"type": "Identity"}
    return {"format": SPEC_FORMAT, "model": info.name, "num_classes": classifier.out_features,
            "in_channels": stem.in_channels, "modules": modules}


def _module_from(entry: dict) -> nn.Module:
    kind = entry["type"]
    if kind == "Conv2d":
        return nn.Conv2d(entry["in"], entry["out"], tuple(entry["kernel"]), tuple(entry["stride"]),
                         tuple(entry["padding"]), tuple(entry["dilation"]), entry["groups"], entry["bias"])
    if kind == "BatchNorm2d":
        return nn.BatchNorm2d(entry["num_features"], entry["eps"], entry["momentum"], entry["affine"])
    if kind == "Linear":
        return nn.Linear(entry["in"], entry["out"], entry["bias"])
    if kind == "ChannelMapShortcut":
        return ChannelMapShortcut(entry["in"], entry["out"], entry["stride"])
    if kind == "Identity":
        return nn.Identity()
    raise PrunelabError(f"architecture spec: unknown module type '{kind}'")


def build_from_spec(spec: dict) -> nn.Module:
    """An untrained model of the shapes in `spec` (from `architecture_spec`); load its weights next."""
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else None
        raise PrunelabError(f"not a prunelab structured spec (format {found!r}, expected {SPEC_FORMAT})")
    model = create_model(spec["model"], spec["num_classes"], spec["in_channels"])
    known = dict(model.named_modules())
    for name, entry in spec["modules"].items():
        if name not in known:
            raise PrunelabError(f"architecture spec names module '{name}', which a "
                                f"'{spec['model']}' does not have")
        set_module(model, name, _module_from(entry))
    return model.eval()
