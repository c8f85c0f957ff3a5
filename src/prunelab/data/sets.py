"""Images as uint8 tensors: a split, a train/test pair, and the input normalisation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import PrunelabError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@dataclass(frozen=True)
class ImageSet:
    """Images and labels of one split.

    Attributes:
        x: uint8 pixels, (N, C, H, W), contiguous (made contiguous if given otherwise).
        y: int64 class indices, (N,).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(
                f"ImageSet.x must be uint8 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.dtype != torch.int64 or self.y.dim() != 1 or len(self.y) != len(self.x):
            raise ValueError(
                f"ImageSet.y must be int64 ({len(self.x)},), got {self.y.dtype} {tuple(self.y.shape)}"
            )
        if not self.x.is_contiguous():
            object.__setattr__(self, "x", self.x.contiguous())

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """A train/test pair with what augmentation and metadata need to know about it."""

    name: str  # "digits", "cifar10", or "cifar10-npz"
    source: str  # a path, or "sklearn.datasets.load_digits"
    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    flip: bool  # horizontal flip preserves the label
    pad: int  # random-crop padding for augmentation, pixels
    # Positions of the training images in the original training set, when the file records them
    # (the byte-exact CIFAR-10 subset does); None otherwise.
    train_index: torch.Tensor | None = None

    @property
    def image_size(self) -> int | None:
        """Height = width of its images, or None when they are not square."""
        h, w = self.test.x.shape[2:4]
        return int(h) if h == w else None


def with_training_set(data: Dataset, other: Dataset, other_name: str) -> Dataset:
    """`data` with `other`'s training images, keeping `data`'s own pixels wherever it has them.

    When `data` records where its training images sit in the original training set
    (`train_index`, as the byte-exact CIFAR-10 subset does) and `other` holds that whole set in
    its original order (as the JPEG copy of all 50,000 does), `data`'s exact images replace
    their copies in `other`: the best training set there is. The labels at those positions must
    agree, which catches a different order. The test split stays `data`'s.
    """
    shape, want = tuple(other.train.x.shape[1:]), tuple(data.test.x.shape[1:])
    if shape != want:
        raise PrunelabError(f"training data {other_name} has {shape} (C, H, W) images, the test "
                            f"data {want}; pass training images of the same kind")
    if len(other.classes) != len(data.classes):
        raise PrunelabError(f"training data {other_name} has {len(other.classes)} classes, the "
                            f"test data {len(data.classes)}")
    x, y = other.train.x, other.train.y
    index = data.train_index
    if index is not None and len(index) and int(index.max()) < len(y):
        wrong = int((y[index] != data.train.y).sum())
        if wrong:
            raise PrunelabError(f"training data {other_name}: {wrong} of the {len(index)} images "
                                f"the test data's file also holds have other labels, so its "
                                f"images are not in the original order; pass the full set in order")
        x = x.clone()
        x[index] = data.train.x
    return dataclasses.replace(data, train=ImageSet(x, y), train_index=None,
                               flip=data.flip and other.flip, pad=min(data.pad, other.pad))


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Scale uint8 pixels to [0, 1], then standardise per channel.

    Args:
        x: uint8 images, (N, C, H, W), on any device.
        mean: per-channel means in [0, 1] units, length C.
        std: per-channel standard deviations in [0, 1] units, length C, all > 0.

    Returns:
        float32 (N, C, H, W) on x's device: (x / 255 - mean[c]) / std[c].
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise PrunelabError(f"normalize expects uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    return standardize(x, *normalization(mean, std, x.shape[1], x.device))


def normalization(mean: Sequence[float], std: Sequence[float], channels: int, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated per-channel mean and std as float32 (1, C, 1, 1) tensors on `device`, made once
    (a training loop that rebuilt them every step would copy them to the GPU every step)."""
    if len(mean) != channels or len(std) != channels:
        raise PrunelabError(
            f"normalize: images have {channels} channels but mean has {len(mean)} "
            f"and std has {len(std)} values"
        )
    if any(s <= 0 for s in std):
        raise PrunelabError(f"normalize: std must be > 0, got {list(std)}")
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return m, s


def standardize(x: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """(x / 255 - m) / s for uint8 images `x` and `normalization`'s tensors, on x's device."""
    return (x.to(torch.float32) / 255.0 - m) / s


def imageset(x: np.ndarray, y: np.ndarray) -> ImageSet:
    """An ImageSet of (N, C, H, W) uint8 pixels and integer labels given as numpy arrays."""
    return ImageSet(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)),
        y=torch.from_numpy(np.asarray(y, dtype=np.int64).copy()),
    )


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
