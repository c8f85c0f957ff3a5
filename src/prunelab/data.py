"""Datasets as uint8 tensors: torchvision CIFAR-10, CIFAR-10 npz files, and the embedded digits default."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunelab.errors import PrunelabError, unknown

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

UINT8_KEYS = ("x_train", "y_train", "x_test", "y_test")
JPEG_KEYS = ("train_jpeg", "train_offsets", "test_jpeg", "test_offsets", "y_train", "y_test")
_CACHE_VERSION = 1  # bump when the cache file's content changes


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


def dataset_names() -> list[str]:
    """Return the registry names accepted by `load_dataset` (besides `.npz` paths)."""
    return sorted(_LOADERS)


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
    spec = os.fspath(spec)
    loader = _LOADERS.get(spec)
    if loader is not None:
        return loader(root, download)
    path = Path(spec).expanduser()
    if spec.lower().endswith(".npz"):
        return _load_npz(path, cache_dir)
    if "/" in spec or os.sep in spec or path.exists():
        if path.exists():
            raise PrunelabError(f"dataset file {path} is not a .npz file")
        raise PrunelabError(f"no such dataset file: {path}")
    raise unknown("dataset", spec, dataset_names())


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


# ---- registry loaders: (root, download) -> Dataset ----


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
        train=_imageset(x_tr, y_tr),
        test=_imageset(x_te, y_te),
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
            f"could not download CIFAR-10 into {root}: {_one_line(e)}; put cifar-10-batches-py there yourself"
        ) from e
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted", md5 mismatch
        if download:
            raise PrunelabError(
                f"CIFAR-10 download into {root} did not give a valid {folder}: {_one_line(e)}"
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
        train=_imageset(train.data.transpose(0, 3, 1, 2), np.asarray(train.targets)),
        test=_imageset(test.data.transpose(0, 3, 1, 2), np.asarray(test.targets)),
        classes=tuple(train.classes),
        flip=True,
        pad=4,
    )


_LOADERS: dict[str, Callable[[str | os.PathLike | None, bool], Dataset]] = {
    "cifar10": _load_cifar10,
    "digits": _load_digits,
}


# ---- npz files ----


def _load_npz(path: Path, cache_dir: str | os.PathLike | None) -> Dataset:
    """Load either npz layout; the JPEG layout is decoded once and cached uncompressed."""
    if not path.is_file():
        raise PrunelabError(f"no such dataset file: {path}")
    with _open_npz(path) as z:
        keys = set(z.files)
        index = _read(z, path, "train_index") if "train_index" in keys else None
        if set(UINT8_KEYS) <= keys:
            x_tr, y_tr, x_te, y_te = (_read(z, path, k) for k in UINT8_KEYS)
        elif set(JPEG_KEYS) <= keys:
            cache = _cache_path(path, cache_dir)
            arrays = _read_cache(cache)
            if arrays is None:
                arrays = _decode_jpeg_npz(z, path)
                _write_cache(cache, arrays)
            x_tr, y_tr, x_te, y_te = (arrays[k] for k in UINT8_KEYS)
        else:
            raise PrunelabError(
                f"{path} has keys {sorted(keys)}; expected the uint8 layout "
                f"({', '.join(UINT8_KEYS)}) or the JPEG layout ({', '.join(JPEG_KEYS)})"
            )
    train = _checked_split(path, "train", x_tr, y_tr)
    test = _checked_split(path, "test", x_te, y_te)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise PrunelabError(
            f"{path}: train images are {tuple(train.x.shape[1:])} (C, H, W) "
            f"but test images are {tuple(test.x.shape[1:])}"
        )
    train_index = None
    if index is not None:
        if index.shape != (len(train),) or not np.issubdtype(index.dtype, np.integer) or (
                len(index) and index.min() < 0):
            raise PrunelabError(f"{path}: train_index must be {len(train)} non-negative integer "
                                f"positions, got {index.dtype} {index.shape}")
        train_index = torch.from_numpy(index.astype(np.int64))
    return Dataset(
        name="cifar10-npz",
        source=str(path.resolve()),
        train=train,
        test=test,
        classes=CIFAR10_CLASSES,
        flip=True,
        pad=4,
        train_index=train_index,
    )


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise PrunelabError(f"{path} is not a valid .npz file ({_one_line(e)})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise PrunelabError(f"{path} holds a single array, not a .npz archive of named arrays")
    return z


def _read(z: np.lib.npyio.NpzFile, path: Path, key: str) -> np.ndarray:
    try:
        return z[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise PrunelabError(f"{path}: cannot read array '{key}' ({_one_line(e)})") from e


def _checked_split(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> ImageSet:
    """Validate HWC uint8 pixels and 0..9 labels of one split; return it as CHW tensors."""
    if x.dtype != np.uint8:
        raise PrunelabError(f"{path}: x_{split} must be uint8 pixels, got {x.dtype}")
    if x.ndim != 4:
        raise PrunelabError(f"{path}: x_{split} must be (N, H, W, C), got shape {x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:  # Keras stores labels as (N, 1)
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise PrunelabError(f"{path}: y_{split} must be integer labels (N,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise PrunelabError(f"{path}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= len(CIFAR10_CLASSES)):
        raise PrunelabError(
            f"{path}: y_{split} has labels {y.min()}..{y.max()}, expected "
            f"0..{len(CIFAR10_CLASSES) - 1} (the CIFAR-10 classes)"
        )
    return _imageset(x.transpose(0, 3, 1, 2), y)


def _decode_jpeg_npz(z: np.lib.npyio.NpzFile, path: Path) -> dict[str, np.ndarray]:
    """Decode both splits of the JPEG layout to HWC uint8 arrays (the uint8 layout's keys)."""
    out = {}
    for split in ("train", "test"):
        buf = _read(z, path, f"{split}_jpeg")
        offsets = _read(z, path, f"{split}_offsets")
        y = _read(z, path, f"y_{split}")
        n = len(offsets) - 1
        if buf.dtype != np.uint8 or buf.ndim != 1:
            raise PrunelabError(
                f"{path}: {split}_jpeg must be a flat uint8 buffer, got {buf.dtype} {buf.shape}"
            )
        if (
            offsets.ndim != 1
            or n < 0
            or not np.issubdtype(offsets.dtype, np.integer)
            or (n > 0 and (offsets[0] < 0 or offsets[-1] > len(buf) or np.any(np.diff(offsets) <= 0)))
        ):
            raise PrunelabError(
                f"{path}: {split}_offsets must be increasing integers within {split}_jpeg (length N + 1)"
            )
        if n != len(y):
            raise PrunelabError(f"{path}: {split}_offsets gives {n} images but y_{split} has {len(y)} labels")
        out[f"x_{split}"] = _decode_jpegs(buf, offsets, f"{path}: {split}")
        out[f"y_{split}"] = y
    return out


def _decode_jpegs(buf: np.ndarray, offsets: np.ndarray, where: str) -> np.ndarray:
    """Decode image i = buf[offsets[i]:offsets[i+1]] for all i; return (N, H, W, 3) uint8."""
    from PIL import Image, UnidentifiedImageError

    data = buf.tobytes()
    n = len(offsets) - 1
    out = None
    for i in range(n):
        try:
            img = np.asarray(Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]])).convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise PrunelabError(f"{where} image {i} is not a readable JPEG ({_one_line(e)})") from e
        if out is None:
            out = np.empty((n, *img.shape), dtype=np.uint8)
        elif img.shape != out.shape[1:]:
            raise PrunelabError(f"{where} image {i} is {img.shape} (H, W, C), image 0 is {out.shape[1:]}")
        out[i] = img
    return out if out is not None else np.empty((0, 0, 0, 3), dtype=np.uint8)


# ---- decode cache ----


def _cache_path(source: Path, cache_dir: str | os.PathLike | None) -> Path:
    """Cache file for a source npz, keyed by its name, size and mtime and by the decoder."""
    import PIL

    if cache_dir is None:
        cache_dir = os.environ.get("PRUNELAB_CACHE") or Path.home() / ".cache" / "prunelab"
    st = source.stat()
    # the Pillow version is in the key because another libjpeg may decode other pixels
    key = f"{source.name}|{st.st_size}|{st.st_mtime_ns}|pillow {PIL.__version__}|v{_CACHE_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"{source.stem}-decoded-{digest}.npz"


def _read_cache(cache: Path) -> dict[str, np.ndarray] | None:
    """Return the cached arrays, or None when there is no usable cache (then it is rebuilt)."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in UINT8_KEYS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def _write_cache(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically: a temporary file in the same folder, then os.replace."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a shared cache folder should be readable
        os.replace(tmp, cache)
        tmp = None
    except OSError as e:
        # the data itself is fine; only the next load will be slow again
        warnings.warn(f"could not cache decoded images in {cache.parent}: {_one_line(e)}", stacklevel=4)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


# ---- helpers ----


def _imageset(x: np.ndarray, y: np.ndarray) -> ImageSet:
    return ImageSet(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)),
        y=torch.from_numpy(np.asarray(y, dtype=np.int64).copy()),
    )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
