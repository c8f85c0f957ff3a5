"""Calibration images: a seeded sample of the training split (never the test split)."""

from __future__ import annotations

import torch

from ..errors import PrunelabError
from .sets import ImageSet


def calibration_images(train: ImageSet, n: int, seed: int = 0) -> torch.Tensor:
    """`n` training images, drawn without replacement by `seed`, in their original order: uint8
    (n, C, H, W)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PrunelabError(f"--calibration must be a positive number of images, got {n!r}")
    if n > len(train):
        raise PrunelabError(f"--calibration {n} asks for more images than the {len(train):,} of the training "
                            f"split; pass at most {len(train)} or more training data (--train-data)")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return train.x[pick.sort().values]
