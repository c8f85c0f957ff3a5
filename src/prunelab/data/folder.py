"""Image folders in torchvision's ImageFolder layout (one sub-folder per class; `train/` and `val/`
or `test/` sub-folders when there are splits), streamed: decoded batch by batch, never held whole."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import datasets, transforms

from ..errors import PrunelabError
from .augment import augment
from .sets import ImageSet, normalization
from .source import TorchSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
TEST_NAMES = ("test", "val")


def is_image_folder(spec: str) -> bool:
    """Whether `spec` names a folder (not a dataset name or a file)."""
    return bool(spec) and Path(spec).expanduser().is_dir()


def folder_splits(root: str | Path) -> dict[str, Path]:
    """The splits of an image folder: {'test': ..., 'train': ... (when there is one)}.

    `root/train` with `root/test` or `root/val` are the splits; otherwise the class folders are
    at the root and it is all test images.
    """
    root = Path(root).expanduser()
    test = next((root / n for n in TEST_NAMES if (root / n).is_dir()), None)
    if test is not None:
        splits = {"test": test}
        if (root / "train").is_dir():
            splits["train"] = root / "train"
        return splits
    if (root / "train").is_dir():
        raise PrunelabError(f"image folder {root} has train/ but no test/ or val/ split: every number "
                            f"prunelab gives is measured on test images; add {root}/test/<class>/...")
    return {"test": root}


class FolderSource(TorchSource):
    """One split of an image folder, as a network takes it: each image converted to the network's
    channels (grey or RGB), resized (shorter side) and centre-cropped to `size` where it is not
    `size` x `size` already, scaled to [0, 1] and standardised per channel by `mean` and `std`.

    Args:
        root: the split's folder, holding one sub-folder of images per class.
        size: height = width the network takes; None keeps every image's own size.
        mean, std: the network's input normalisation, per channel, in [0, 1] units.
    """

    def __init__(self, root: str | Path, size: int | None, mean: Sequence[float], std: Sequence[float]):
        root = Path(root)
        channels = len(mean)
        if channels not in (1, 3):
            raise PrunelabError(f"image folder {root}: images are read as grey or RGB, and the network "
                                f"takes {channels} channels")
        steps = [transforms.Lambda(lambda im: _fit(im, size))] if size else []
        tf = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(list(mean), list(std))])
        mode = "L" if channels == 1 else "RGB"
        try:
            folder = datasets.ImageFolder(root, transform=tf, loader=lambda p: _open(p, mode),
                                          is_valid_file=lambda p: p.lower().endswith(IMAGE_SUFFIXES))
        except FileNotFoundError as exc:  # no class folders, or one of them holds no image
            raise PrunelabError(f"image folder {root}: {str(exc).rstrip('.')}; put each class's images "
                                f"in a sub-folder of its own ({', '.join(IMAGE_SUFFIXES)})") from None
        super().__init__(folder, name=f"image folder {root}")
        self.classes = tuple(folder.classes)
        self.mean, self.std = tuple(mean), tuple(std)
        self._pixels = transforms.Compose([*steps, transforms.ToTensor()])  # [0, 1], not normalised

    def augmented_draws(self, n: int, seed: int, batch_size: int, device: torch.device
                        ) -> Iterator[torch.Tensor]:
        """As `draws`, each batch augmented as CIFAR training augments its images before it is
        normalised: a random crop after zero (black) padding of an eighth of the side, and a random
        horizontal flip, seeded by `seed`."""
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator)[:n]
        m, s = normalization(self.mean, self.std, len(self.mean), device)
        for start in range(0, len(order), batch_size):
            pixels = torch.stack([self._pixels(self.dataset.loader(self.dataset.samples[int(i)][0]))
                                  for i in order[start:start + batch_size]])
            pixels = augment(pixels, max(1, pixels.shape[-1] // 8), True, generator)
            yield (pixels.to(device) - m) / s


def memory_allowance() -> int:
    """A quarter of the memory free now, in bytes: what a folder's training images may take."""
    try:
        with open("/proc/meminfo") as info:
            free = next(int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return free // 4


def training_set(root: str | Path, size: int, channels: int, limit_bytes: int
                 ) -> tuple[ImageSet, tuple[str, ...]]:
    """The images of a folder split decoded to uint8 (N, C, size, size), as retraining reads them
    (each fitted to `size` as evaluation fits it), and its class names; refused in one line when
    they would take more than `limit_bytes`, before any is decoded."""
    mode = "L" if channels == 1 else "RGB"
    try:
        folder = datasets.ImageFolder(root, loader=lambda p: _open(p, mode),
                                      is_valid_file=lambda p: p.lower().endswith(IMAGE_SUFFIXES))
    except FileNotFoundError as exc:
        raise PrunelabError(f"image folder {root}: {str(exc).rstrip('.')}") from None
    need = len(folder) * channels * size * size
    if need > limit_bytes:
        raise PrunelabError(f"retraining holds the training images in memory, and the {len(folder):,} of "
                            f"{root} at {size} px take {_mib(need)}, more than the {_mib(limit_bytes)} "
                            f"allowed (a quarter of the free memory); retrain on fewer images, or sweep "
                            f"one-shot methods (+bn streams)")
    x = torch.empty((len(folder), channels, size, size), dtype=torch.uint8)
    for i, (path, _) in enumerate(folder.samples):
        x[i] = transforms.functional.pil_to_tensor(_fit(folder.loader(path), size))
    return ImageSet(x, torch.tensor(folder.targets, dtype=torch.int64)), tuple(folder.classes)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _open(path: str, mode: str) -> Image.Image:
    """An image file as a PIL image in `mode`; one that cannot be decoded is one line naming it."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise PrunelabError(f"cannot read image {path} ({type(exc).__name__}: {exc}); replace or "
                            f"remove it") from None


def _fit(image: Image.Image, size: int) -> Image.Image:
    """`image` resized (shorter side to `size`, bilinear) and centre-cropped to `size` x `size`,
    or as it is when it has that size already (no resampling of images that fit)."""
    if image.size == (size, size):
        return image
    image = transforms.functional.resize(image, size, antialias=True)
    return transforms.functional.center_crop(image, [size, size])

