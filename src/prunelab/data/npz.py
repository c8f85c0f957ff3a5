"""CIFAR-10 as .npz files: uint8 arrays, or JPEG bytes with offsets decoded once and cached."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import PrunelabError
from .sets import CIFAR10_CLASSES, Dataset, ImageSet, imageset, one_line

UINT8_KEYS = ("x_train", "y_train", "x_test", "y_test")
JPEG_KEYS = ("train_jpeg", "train_offsets", "test_jpeg", "test_offsets", "y_train", "y_test")
_CACHE_VERSION = 1  # bump when the cache file's content changes


def load_npz(path: Path, cache_dir: str | os.PathLike | None) -> Dataset:
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
    with open(path, "rb") as f:
        head = f.read(6)
    if not zipfile.is_zipfile(path) and head != b"\x93NUMPY":  # numpy would suggest unpickling it
        raise PrunelabError(f"{path} is not a valid .npz file (not a zip archive of named arrays); pass "
                            f"a file written by numpy.savez")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise PrunelabError(f"{path} is not a valid .npz file ({one_line(e)})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise PrunelabError(f"{path} holds a single array, not a .npz archive of named arrays")
    return z


def _read(z: np.lib.npyio.NpzFile, path: Path, key: str) -> np.ndarray:
    try:
        return z[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise PrunelabError(f"{path}: cannot read array '{key}' ({one_line(e)})") from e


def _checked_split(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> ImageSet:
    """Validate HWC uint8 pixels and 0..9 labels of one split; return it as CHW tensors."""
    if x.dtype != np.uint8:
        raise PrunelabError(f"{path}: x_{split} must be uint8 pixels, got {x.dtype}")
    if x.ndim != 4:
        raise PrunelabError(f"{path}: x_{split} must be (N, H, W, C), got shape {x.shape}")
    if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        raise PrunelabError(f"{path}: x_{split} is {x.shape}, channels first (N, C, H, W); the npz layout "
                            f"is channels last (N, H, W, C): save x.transpose(0, 2, 3, 1)")
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
    return imageset(x.transpose(0, 3, 1, 2), y)


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
        out[f"x_{split}"] = decode_jpegs(buf, offsets, f"{path}: {split}")
        out[f"y_{split}"] = y
    return out


def decode_jpegs(buf: np.ndarray, offsets: np.ndarray, where: str) -> np.ndarray:
    """Decode image i = buf[offsets[i]:offsets[i+1]] for all i; return (N, H, W, 3) uint8."""
    from PIL import Image, UnidentifiedImageError

    data = buf.tobytes()
    n = len(offsets) - 1
    out = None
    for i in range(n):
        try:
            img = np.asarray(Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]])).convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise PrunelabError(f"{where} image {i} is not a readable JPEG ({one_line(e)})") from e
        if out is None:
            out = np.empty((n, *img.shape), dtype=np.uint8)
        elif img.shape != out.shape[1:]:
            raise PrunelabError(f"{where} image {i} is {img.shape} (H, W, C), image 0 is {out.shape[1:]}")
        out[i] = img
    return out if out is not None else np.empty((0, 0, 0, 3), dtype=np.uint8)



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
        warnings.warn(f"could not cache decoded images in {cache.parent}: {one_line(e)}", stacklevel=4)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
