"""The named datasets: the embedded digits (the offline default) and torchvision's CIFAR-10."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import PrunelabError
from .sets import Dataset, imageset, one_line


def _load_digits(root: str | os.PathLike | None, download: bool) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # values are 0..16; 8 maps to 127.5, which rint sends to 128
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset(
        name="digits",
        source="sklearn.datasets.load_digits",
        train=imageset(x_tr, y_tr),
        test=imageset(x_te, y_te),
        classes=tuple(str(i) for i in range(10)),
        flip=False,
        pad=1,
    )


def _load_cifar10(root: str | os.PathLike | None, download: bool) -> Dataset:
    if root is None:
        raise PrunelabError(
            "dataset 'cifar10' needs the folder that holds cifar-10-batches-py: pass --data-root"
        )
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    folder = root / CIFAR10.base_folder
    try:
        # download (and its md5 pass over every file) once, on the first split only
        train = CIFAR10(root, train=True, download=download)
        test = CIFAR10(root, train=False, download=False)
    except OSError as e:  # URLError is an OSError: no network, refused, unwritable root
        raise PrunelabError(
            f"could not download CIFAR-10 into {root}: {one_line(e)}; put cifar-10-batches-py there yourself"
        ) from e
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted", md5 mismatch
        if download:
            raise PrunelabError(
                f"CIFAR-10 download into {root} did not give a valid {folder}: {one_line(e)}"
            ) from e
        hint = (
            f" (it looks like the batches folder itself: pass its parent {root.parent})"
            if root.name == CIFAR10.base_folder
            else ""
        )
        raise PrunelabError(
            f"CIFAR-10 not found or corrupted in {folder}{hint}: pass --download, "
            f"or put cifar-10-batches-py in {root}"
        ) from e
    return Dataset(
        name="cifar10",
        source=str(folder.resolve()),
        train=imageset(train.data.transpose(0, 3, 1, 2), np.asarray(train.targets)),
        test=imageset(test.data.transpose(0, 3, 1, 2), np.asarray(test.targets)),
        classes=tuple(train.classes),
        flip=True,
        pad=4,
    )


LOADERS: dict[str, Callable[[str | os.PathLike | None, bool], Dataset]] = {
    "cifar10": _load_cifar10,
    "digits": _load_digits,
}
