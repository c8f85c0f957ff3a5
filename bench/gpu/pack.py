"""The CIFAR-10 data of the GPU study in one file that fits the device machine's 64 MiB upload.

What the study trains on is the best data there is: all 50,000 training images, the original
pixels where `cifar10_subset.npz` has them (8,336) and the JPEG q75 copy elsewhere; it tests on
the 1,017 exact test images and on the 10,000 JPEG ones. Both source files together are 83 MB.
The pack drops the JPEG copies of the images whose exact pixels travel, and stores the exact
pixels losslessly at ~1.7 KB per image (PNG: 2.3 KB): a reversible colour transform
(G, R-G, B-G), the median edge predictor of LOCO-I / JPEG-LS on each plane, residuals mod 256,
then LZMA. Everything is numpy and the standard library, so it decodes the same anywhere.

    python bench/gpu/pack.py SUBSET.npz JPEG.npz OUT.npz     # here (prepare.py calls it)
    unpack(OUT.npz, folder) -> (mixed.npz, exact.npz)      # on the device (study.py calls it)
"""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
from pathlib import Path

import numpy as np

PACK_FORMAT = "prunelab-gpu-pack/1"


def _predict(p: np.ndarray) -> np.ndarray:
    """MED prediction of every pixel of planes `p` (..., H, W) from its left, top and top-left
    neighbours; first row from the left, first column from above, the corner 0."""
    a = np.zeros_like(p)
    a[..., :, 1:] = p[..., :, :-1]
    b = np.zeros_like(p)
    b[..., 1:, :] = p[..., :-1, :]
    c = np.zeros_like(p)
    c[..., 1:, 1:] = p[..., :-1, :-1]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    pred = np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))
    pred[..., 0, 1:] = p[..., 0, :-1]
    pred[..., 1:, 0] = p[..., :-1, 0]
    pred[..., 0, 0] = 0
    return pred


def encode_lossless(x: np.ndarray) -> bytes:
    """uint8 RGB images (N, H, W, 3) -> bytes that `decode_lossless` turns back into exactly them."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"encode_lossless takes uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
    v = x.astype(np.int16)
    g = v[..., 1]
    planes = np.stack([g, (v[..., 0] - g) % 256, (v[..., 2] - g) % 256])  # (3, N, H, W)
    residual = ((planes - _predict(planes)) % 256).astype(np.uint8)
    return lzma.compress(residual.tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode_lossless(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `encode_lossless` for images of `shape` (N, H, W, 3); pixel by pixel in raster
    order, all images and planes at once (1,024 vector steps for 32x32 images)."""
    n, h, w, _ = shape
    residual = np.frombuffer(lzma.decompress(data), dtype=np.uint8).reshape(3, n, h, w).astype(np.int16)
    p = np.zeros_like(residual)
    for y in range(h):
        for x in range(w):
            if y == 0:
                pred = p[:, :, 0, x - 1] if x else 0
            elif x == 0:
                pred = p[:, :, y - 1, 0]
            else:
                a, b, c = p[:, :, y, x - 1], p[:, :, y - 1, x], p[:, :, y - 1, x - 1]
                hi, lo = np.maximum(a, b), np.minimum(a, b)
                pred = np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))
            p[:, :, y, x] = (residual[:, :, y, x] + pred) % 256
    g = p[0]
    rgb = np.stack([(p[1] + g) % 256, g, (p[2] + g) % 256], axis=-1)
    return rgb.astype(np.uint8)


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _jpegs(buf: np.ndarray, offsets: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The JPEG files of images `keep` (ascending), joined again, with their new offsets."""
    parts = [buf[offsets[i]:offsets[i + 1]] for i in keep]
    new = np.zeros(len(parts) + 1, dtype=np.int64)
    new[1:] = np.cumsum([len(p) for p in parts])
    return (np.concatenate(parts) if parts else np.zeros(0, np.uint8)), new


def pack(subset: str | Path, jpeg: str | Path, out: str | Path, n_train: int | None = None,
         n_test: int | None = None) -> dict:
    """Write the pack from the byte-exact subset and the JPEG copy of all images; returns its meta.

    `n_train`/`n_test` keep only the first images of each original split (a small pack for a
    rehearsal of the study on the CPU)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from prunelab.data import decode_jpegs as _decode_jpegs

    s, j = np.load(subset), np.load(jpeg)
    n_train = len(j["y_train"]) if n_train is None else n_train
    n_test = len(j["y_test"]) if n_test is None else n_test
    exact = {}
    for split, n in (("train", n_train), ("test", n_test)):
        index = s[f"{split}_index"]
        keep = index < n
        exact[split] = s[f"x_{split}"][keep], index[keep]
        if (j[f"y_{split}"][index[keep]] != s[f"y_{split}"][keep]).any():
            raise ValueError(f"the subset's {split} labels disagree with the JPEG set's: not the same "
                             f"images in order")
    others = np.setdiff1d(np.arange(n_train), exact["train"][1])
    train_jpeg, train_offsets = _jpegs(j["train_jpeg"], j["train_offsets"], others)
    test_jpeg, test_offsets = _jpegs(j["test_jpeg"], j["test_offsets"], np.arange(n_test))
    x_other = _decode_jpegs(train_jpeg, train_offsets, "train")
    x_test_jpeg = _decode_jpegs(test_jpeg, test_offsets, "test")
    meta = {"format": PACK_FORMAT, "sources": [Path(subset).name, Path(jpeg).name],
            "exact_train_sha256": sha256(exact["train"][0]), "exact_test_sha256": sha256(exact["test"][0]),
            "jpeg_train_sha256": sha256(x_other), "jpeg_test_sha256": sha256(x_test_jpeg),
            "decoded_with": _pillow()}
    arrays = dict(
        jpeg_train=train_jpeg, jpeg_train_offsets=train_offsets, jpeg_train_index=others,
        jpeg_test=test_jpeg, jpeg_test_offsets=test_offsets,
        y_train=j["y_train"][:n_train], y_test=j["y_test"][:n_test], meta=np.array(json.dumps(meta)))
    for split, (x, index) in exact.items():
        arrays.update({f"exact_{split}": np.frombuffer(encode_lossless(x), dtype=np.uint8),
                       f"exact_{split}_shape": np.array(x.shape), f"exact_{split}_index": index})
    tmp = Path(str(out) + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(out)
    return meta


def _pillow() -> str:
    import PIL

    return f"Pillow {PIL.__version__}"


def unpack(path: str | Path, folder: str | Path) -> tuple[Path, Path, dict]:
    """Decode the pack into two prunelab uint8 npz files in `folder`.

    Returns:
        (mixed.npz: 50,000 training images, exact where known, and the 10,000 JPEG test images;
         exact.npz: no training images and the 1,017 exact test images;
         a report: the pack's meta plus whether each decoded array has the hash recorded at
         packing: the exact ones must, or the codec is broken; the JPEG ones may differ where
         another libjpeg decodes a little differently).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from prunelab.data import decode_jpegs as _decode_jpegs

    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    if meta.get("format") != PACK_FORMAT:
        raise ValueError(f"{path} is not a {PACK_FORMAT} file")
    exact_train = decode_lossless(z["exact_train"].tobytes(), tuple(z["exact_train_shape"]))
    exact_test = decode_lossless(z["exact_test"].tobytes(), tuple(z["exact_test_shape"]))
    x_other = _decode_jpegs(z["jpeg_train"], z["jpeg_train_offsets"], "train")
    x_test = _decode_jpegs(z["jpeg_test"], z["jpeg_test_offsets"], "test")
    checks = {"exact_train": sha256(exact_train) == meta["exact_train_sha256"],
              "exact_test": sha256(exact_test) == meta["exact_test_sha256"],
              "jpeg_train": sha256(x_other) == meta["jpeg_train_sha256"],
              "jpeg_test": sha256(x_test) == meta["jpeg_test_sha256"]}
    if not (checks["exact_train"] and checks["exact_test"]):
        raise ValueError(f"{path}: the exact pixels did not decode to what was packed")
    y_train = z["y_train"]
    x_train = np.zeros((len(y_train), *exact_train.shape[1:]), dtype=np.uint8)
    x_train[z["exact_train_index"]] = exact_train
    if len(x_other):  # a small pack may hold exact training images only
        x_train[z["jpeg_train_index"]] = x_other
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mixed, exact = folder / "mixed.npz", folder / "exact.npz"
    np.savez(mixed, x_train=x_train, y_train=y_train, x_test=x_test, y_test=z["y_test"])
    np.savez(exact, x_train=np.zeros((0, *exact_test.shape[1:]), np.uint8), y_train=np.zeros(0, np.int64),
             x_test=exact_test, y_test=z["y_test"][z["exact_test_index"]],
             test_index=z["exact_test_index"])
    report = {**meta, "decoded_here_with": _pillow(), "hash_matches": checks,
              "exact_train_images": len(exact_train), "jpeg_train_images": len(x_other)}
    return mixed, exact, report


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python bench/gpu/pack.py SUBSET.npz JPEG.npz OUT.npz")
    print(json.dumps(pack(*sys.argv[1:]), indent=1))
