"""The training augmentation of CIFAR-style images, in batch on the device: random crops after
zero padding and horizontal flips (what training, batch-norm re-estimation and image folders use)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flips, in batch on x's device.

    Args:
        x: uint8 or float (B, C, H, W).
        pad: padding in pixels on each side (0 = no crop).
        flip: flip half the images left-right.
        generator: a generator on x's device, so no random number crosses to or from the host.
    """
    b, _, h, w = x.shape
    device = x.device
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=generator.device).to(device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=generator.device).to(device)
        rows = (oy[:, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=device))[:, None, None, :]
        batch = torch.arange(b, device=device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        flips = (torch.rand(b, generator=generator, device=generator.device) < 0.5).to(device)
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return x
