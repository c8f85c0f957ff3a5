"""Datasets as uint8 tensors: torchvision CIFAR-10, CIFAR-10 npz files, and the embedded digits default."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PrunelabError, unknown
from .builtin import LOADERS
from .npz import JPEG_KEYS, UINT8_KEYS, decode_jpegs, load_npz
from .sets import (
    CIFAR10_CLASSES,
    Dataset,
    ImageSet,
    normalization,
    normalize,
    standardize,
    with_training_set,
)

__all__ = ["CIFAR10_CLASSES", "JPEG_KEYS", "UINT8_KEYS", "Dataset", "ImageSet", "dataset_names",
           "decode_jpegs", "load_dataset", "normalization", "normalize", "standardize", "with_training_set"]


def dataset_names() -> list[str]:
    """Return the registry names accepted by `load_dataset` (besides `.npz` paths)."""
    return sorted(LOADERS)


def load_dataset(
    spec: str | os.PathLike,
    root: str | os.PathLike | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load a dataset by registry name or from a `.npz` file.

    Args:
        spec: a name from `dataset_names()` ("cifar10", "digits") or a path to a `.npz` file
            in the uint8 layout (x_train, y_train, x_test, y_test) or the JPEG layout
            (train_jpeg, train_offsets, test_jpeg, test_offsets, y_train, y_test).
        root: folder holding (or to receive) `cifar-10-batches-py`; needed for "cifar10" only.
        download: let torchvision download CIFAR-10 into `root` when it is missing.
        cache_dir: where decoded JPEG-layout files are cached; default env PRUNELAB_CACHE,
            else ~/.cache/prunelab.

    Returns:
        The dataset; `train.x`/`test.x` are uint8 (N, C, H, W), `train.y`/`test.y` int64 (N,).

    Raises:
        PrunelabError: unknown name, missing or invalid file, data not found or not downloadable.
    """
    data = _load(os.fspath(spec), root, download, cache_dir)
    if len(data.test) == 0:
        raise PrunelabError(f"dataset {spec} has no test images: every number prunelab gives is measured "
                            f"on them; pass a dataset with a test split")
    return data


def _load(spec: str, root, download: bool, cache_dir) -> Dataset:
    loader = LOADERS.get(spec)
    if loader is not None:
        return loader(root, download)
    path = Path(spec).expanduser()
    if spec.lower().endswith(".npz"):
        return load_npz(path, cache_dir)
    if "/" in spec or os.sep in spec or path.exists():
        if path.exists():
            raise PrunelabError(f"dataset file {path} is not a .npz file")
        raise PrunelabError(f"no such dataset file: {path}")
    raise unknown("dataset", spec, dataset_names())
