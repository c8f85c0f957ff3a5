"""Tests for prunelab.data: digits, npz layouts and their cache, torchvision CIFAR-10, normalize."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prunelab import data
from prunelab.data import CIFAR10_CLASSES, ImageSet, dataset_names, load_dataset, normalize, npz
from prunelab.errors import PrunelabError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
SUBSET = SHARED / "cifar10_subset.npz"
FULL_JPEG = SHARED / "cifar10_full_jpeg_q75.npz"


# ---- helpers ----


def smooth_images(n: int, h: int = 16, w: int = 16, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 smooth colour gradients, which JPEG keeps close to the original."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)  # (h, w) in [0, 1)
    base = rng.uniform(40, 160, size=(n, 1, 1, 3))
    slope_y, slope_x = rng.uniform(-40, 40, size=(2, n, 1, 1, 3))
    return np.rint(base + slope_y * yy[..., None] + slope_x * xx[..., None]).astype(np.uint8)


def encode_jpegs(x: np.ndarray, quality: int = 95) -> tuple[np.ndarray, np.ndarray]:
    """Encode (n, h, w, 3) uint8 images as joined JPEG bytes and (n + 1,) offsets."""
    blobs = []
    for img in x:
        b = io.BytesIO()
        Image.fromarray(img).save(b, format="JPEG", quality=quality)
        blobs.append(b.getvalue())
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


def reference_decode(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            np.asarray(Image.open(io.BytesIO(buf[a:b].tobytes())).convert("RGB"))
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
    )


def write_jpeg_npz(path: Path, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """Write a tiny JPEG-layout npz; return the original HWC pixels and labels."""
    x_tr, x_te = smooth_images(n_train, seed=1), smooth_images(n_test, seed=2)
    y_tr, y_te = np.arange(n_train) % 10, (np.arange(n_test) * 3) % 10
    tr_buf, tr_off = encode_jpegs(x_tr)
    te_buf, te_off = encode_jpegs(x_te)
    np.savez_compressed(
        path,
        train_jpeg=tr_buf,
        train_offsets=tr_off,
        test_jpeg=te_buf,
        test_offsets=te_off,
        y_train=y_tr.astype(np.int64),
        y_test=y_te.astype(np.int64),
    )
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


def uint8_arrays(n_train: int = 5, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=n_train).astype(np.int64),
        "x_test": rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=n_test).astype(np.int64),
    }


def chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# ---- registry and digits ----


def test_dataset_names():
    assert dataset_names() == ["cifar10", "digits"]


@pytest.fixture(scope="module")
def digits_set():
    return load_dataset("digits")


def test_digits_shapes_dtypes_and_metadata(digits_set):
    assert digits_set.name == "digits"
    assert digits_set.source == "sklearn.datasets.load_digits"
    assert digits_set.classes == tuple(str(i) for i in range(10))
    assert (digits_set.flip, digits_set.pad) == (False, 1)
    assert len(digits_set.train) + len(digits_set.test) == 1797
    assert (len(digits_set.train), len(digits_set.test)) == (1437, 360)
    for split in (digits_set.train, digits_set.test):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (1, 8, 8) and split.x.is_contiguous()
        assert split.y.shape == (len(split.x),)
        assert 0 <= int(split.y.min()) and int(split.y.max()) <= 9


def test_digits_pixels_are_rescaled_sklearn_values(digits_set):
    from sklearn.datasets import load_digits

    allowed = {int(np.rint(v * 255 / 16)) for v in range(17)}
    seen = set(torch.cat([digits_set.train.x, digits_set.test.x]).unique().tolist())
    assert seen <= allowed and {0, 255} <= seen
    # the multiset of images survives the split: compare sorted pixel sums
    ref = np.rint(load_digits().images * 255 / 16).sum(axis=(1, 2))
    got = torch.cat([digits_set.train.x, digits_set.test.x]).double().sum(dim=(1, 2, 3)).numpy()
    np.testing.assert_array_equal(np.sort(got), np.sort(ref))


def test_digits_split_is_deterministic_and_stratified(digits_set):
    again = load_dataset("digits")
    assert torch.equal(again.train.x, digits_set.train.x) and torch.equal(again.test.y, digits_set.test.y)
    test_counts = torch.bincount(digits_set.test.y, minlength=10)
    total = test_counts + torch.bincount(digits_set.train.y, minlength=10)
    assert torch.all((test_counts.double() / total - 0.2).abs() < 0.02)


def test_unknown_name_suggests_close_match():
    with pytest.raises(PrunelabError, match="unknown dataset 'cifar'.*cifar10"):
        load_dataset("cifar")


def test_path_like_specs_give_file_errors(tmp_path):
    with pytest.raises(PrunelabError, match="no such dataset file"):
        load_dataset(str(tmp_path / "nope" / "data"))
    txt = tmp_path / "data.txt"
    txt.write_text("x")
    with pytest.raises(PrunelabError, match="not a .npz"):
        load_dataset(str(txt))


# ---- npz: uint8 layout ----


def test_npz_uint8_layout_round_trips(tmp_path):
    arrays = uint8_arrays()
    arrays["y_train"] = arrays["y_train"][:, None]  # Keras-style (N, 1) labels are accepted
    path = tmp_path / "tiny.npz"
    np.savez_compressed(path, **arrays)
    ds = load_dataset(str(path), cache_dir=tmp_path / "cache")
    assert ds.name == "cifar10-npz" and ds.source == str(path.resolve())
    assert ds.classes == CIFAR10_CLASSES and (ds.flip, ds.pad) == (True, 4)
    assert torch.equal(ds.train.x, chw(arrays["x_train"])) and ds.train.x.is_contiguous()
    assert torch.equal(ds.test.x, chw(arrays["x_test"]))
    assert ds.train.y.dtype == torch.int64
    assert ds.train.y.tolist() == arrays["y_train"][:, 0].tolist()
    assert ds.test.y.tolist() == arrays["y_test"].tolist()
    assert not (tmp_path / "cache").exists()  # exact pixels need no cache


# ---- npz: JPEG layout and its cache ----


def test_npz_jpeg_layout_decodes_and_caches(tmp_path):
    path = tmp_path / "jpeg.npz"
    orig = write_jpeg_npz(path)
    cache = tmp_path / "cache"
    ds = load_dataset(str(path), cache_dir=cache)

    assert ds.train.x.shape == (6, 3, 16, 16) and ds.test.x.shape == (4, 3, 16, 16)
    assert ds.train.y.tolist() == orig["y_train"].tolist()
    assert ds.test.y.tolist() == orig["y_test"].tolist()
    diff = (ds.train.x.int() - chw(orig["x_train"]).int()).abs()
    assert diff.float().mean() < 2 and diff.max() <= 12
    with np.load(path) as z:  # exactly what Pillow decodes
        ref = reference_decode(z["test_jpeg"], z["test_offsets"])
    assert torch.equal(ds.test.x, chw(ref))

    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].startswith("jpeg-decoded-") and files[0].endswith(".npz")
    assert load_dataset(str(cache / files[0])).test.x.equal(ds.test.x)  # a uint8-layout file


def test_grayscale_jpeg_decodes_to_rgb(tmp_path):
    path = tmp_path / "jpeg.npz"
    write_jpeg_npz(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    grey = io.BytesIO()
    Image.fromarray(np.full((16, 16), 90, np.uint8), mode="L").save(grey, format="JPEG")
    blob = np.frombuffer(grey.getvalue(), np.uint8)
    arrays["test_jpeg"] = np.concatenate([arrays["test_jpeg"], blob])
    arrays["test_offsets"] = np.append(arrays["test_offsets"], len(arrays["test_jpeg"]))
    arrays["y_test"] = np.append(arrays["y_test"], 7)
    np.savez(path, **arrays)
    ds = load_dataset(str(path), cache_dir=tmp_path / "cache")
    assert ds.test.x.shape == (5, 3, 16, 16)
    assert torch.all(ds.test.x[4] == 90)


def test_second_jpeg_load_uses_cache_and_mtime_invalidates(tmp_path, monkeypatch):
    path = tmp_path / "jpeg.npz"
    write_jpeg_npz(path)
    cache = tmp_path / "cache"
    first = load_dataset(str(path), cache_dir=cache)

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    with monkeypatch.context() as m:
        m.setattr(npz, "decode_jpegs", no_decode)
        second = load_dataset(str(path), cache_dir=cache)
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.y, second.test.y)

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # source changed: new key
    third = load_dataset(str(path), cache_dir=cache)
    assert torch.equal(first.train.x, third.train.x)
    assert len(list(cache.iterdir())) == 2


def test_cache_dir_defaults_to_env(tmp_path, monkeypatch):
    path = tmp_path / "jpeg.npz"
    write_jpeg_npz(path)
    monkeypatch.setenv("PRUNELAB_CACHE", str(tmp_path / "envcache"))
    load_dataset(str(path))
    assert len(list((tmp_path / "envcache").glob("jpeg-decoded-*.npz"))) == 1


def test_read_only_source_folder(tmp_path):
    src = tmp_path / "ro"
    src.mkdir()
    path = src / "jpeg.npz"
    orig = write_jpeg_npz(path)
    src.chmod(0o555)
    try:
        ds = load_dataset(str(path), cache_dir=tmp_path / "cache")
        # tests may run as root, which ignores the mode: check nothing was written there
        assert [p.name for p in src.iterdir()] == ["jpeg.npz"]
    finally:
        src.chmod(0o755)
    assert ds.train.y.tolist() == orig["y_train"].tolist()


def test_interrupted_cache_write_leaves_no_cache(tmp_path, monkeypatch):
    path = tmp_path / "jpeg.npz"
    write_jpeg_npz(path)
    cache = tmp_path / "cache"

    during_write = []

    def interrupted_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        during_write.extend(p.name for p in cache.iterdir())
        raise KeyboardInterrupt  # finally blocks run; a SIGKILL would not

    with monkeypatch.context() as m:
        m.setattr(npz.np, "savez", interrupted_savez)
        with pytest.raises(KeyboardInterrupt):
            load_dataset(str(path), cache_dir=cache)
    # only a temporary name existed while writing, so a hard kill cannot leave a bad cache
    assert len(during_write) == 1 and during_write[0].endswith(".tmp")
    assert list(cache.iterdir()) == []  # and the temporary file is gone
    load_dataset(str(path), cache_dir=cache)
    assert len(list(cache.iterdir())) == 1


def test_corrupt_cache_is_rebuilt(tmp_path):
    path = tmp_path / "jpeg.npz"
    write_jpeg_npz(path)
    cache = tmp_path / "cache"
    first = load_dataset(str(path), cache_dir=cache)
    (cached,) = cache.iterdir()
    cached.write_bytes(b"garbage")
    again = load_dataset(str(path), cache_dir=cache)
    assert torch.equal(first.train.x, again.train.x)
    assert np.load(cached)["x_train"].shape == (6, 16, 16, 3)


def test_unwritable_cache_warns_but_loads(tmp_path):
    path = tmp_path / "jpeg.npz"
    orig = write_jpeg_npz(path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not cache"):
        ds = load_dataset(str(path), cache_dir=blocker / "cache")
    assert ds.test.y.tolist() == orig["y_test"].tolist()


# ---- npz: bad files ----


def test_missing_npz_names_path(tmp_path):
    path = tmp_path / "missing.npz"
    with pytest.raises(PrunelabError, match="no such dataset file.*missing.npz"):
        load_dataset(str(path))


@pytest.mark.parametrize("content", [b"", b"this is not a zip file at all" * 10])
def test_garbage_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(PrunelabError, match="bad.npz is not a valid .npz"):
        load_dataset(str(path))


def test_single_array_file_named_npz(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(PrunelabError, match="single array"):
        load_dataset(str(path))


def test_wrong_keys_lists_found_and_expected(tmp_path):
    path = tmp_path / "keys.npz"
    np.savez(path, images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(2, np.int64))
    with pytest.raises(PrunelabError) as err:
        load_dataset(str(path))
    msg = str(err.value)
    assert "images" in msg and "labels" in msg and "x_train" in msg and "train_jpeg" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"y_train": np.zeros(4, np.int64)}, "5 images but y_train has 4"),
        ({"x_test": np.zeros((3, 32, 32, 3), np.float32)}, "uint8"),
        ({"x_test": np.zeros((3, 32, 32), np.uint8)}, r"\(N, H, W, C\)"),
        ({"y_test": np.array([0, 10, 1])}, "labels 0..10"),
        ({"y_test": np.array([0, -1, 1])}, "labels -1..1"),
        ({"y_test": np.array([0.0, 1.0, 2.0])}, "integer labels"),
        ({"x_test": np.zeros((3, 16, 16, 3), np.uint8)}, "train images are"),
    ],
)
def test_invalid_uint8_npz(tmp_path, change, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **{**uint8_arrays(), **change})
    with pytest.raises(PrunelabError, match=match):
        load_dataset(str(path))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"y_test": np.zeros(3, np.int64)}, "gives 4 images but y_test has 3"),
        ({"test_offsets": np.array([0, 5, 3, 8, 10])}, "increasing"),
        ({"test_offsets": np.array([0, 5, 10, 15, 10**9])}, "increasing"),
        ({"test_jpeg": np.zeros(300, np.uint8)}, "image 0 is not a readable JPEG"),
        ({"test_jpeg": np.zeros(300, np.int16)}, "flat uint8"),
    ],
)
def test_invalid_jpeg_npz(tmp_path, change, match):
    good = tmp_path / "good.npz"
    write_jpeg_npz(good)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    if "test_jpeg" in change:  # keep the offsets consistent with the new buffer
        arrays["test_offsets"] = np.array([0, 75, 150, 225, 300])
    path = tmp_path / "bad.npz"
    np.savez(path, **{**arrays, **change})
    with pytest.raises(PrunelabError, match=match):
        load_dataset(str(path), cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz"))


# ---- torchvision CIFAR-10, offline ----


def test_cifar10_needs_root():
    with pytest.raises(PrunelabError, match="--data-root"):
        load_dataset("cifar10")


def test_cifar10_absent_without_download(tmp_path):
    with pytest.raises(PrunelabError) as err:
        load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "--download" in msg
    assert "\n" not in msg


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_cifar_archive(tmp_path, monkeypatch):
    """A tiny cifar-10-python.tar.gz that torchvision's CIFAR10 accepts, served by a fake download."""
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(0)
    folder = tmp_path / "build" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name, n in (("data_batch_1", 3), ("data_batch_2", 2), ("test_batch", 4)):
        rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # CHW rows, as in the original
        labels = rng.integers(0, 10, size=n).tolist()
        batches[name] = (rows, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": rows}, f)
    names = [f"class{i}" for i in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": 3}, f)
    tgz = tmp_path / "build" / "fake-cifar.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")

    monkeypatch.setattr(
        CIFAR10, "train_list", [[n, md5(folder / n)] for n in ("data_batch_1", "data_batch_2")]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(
        CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": md5(folder / "batches.meta")},
    )
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(tgz))
    monkeypatch.setattr(CIFAR10, "url", "https://example.invalid/cifar-10-python.tar.gz")
    calls = []

    def fake_download_url(url, root, filename=None, md5=None, max_redirect_hops=3):
        calls.append(url)
        dest = Path(root) / (filename or os.path.basename(url))
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tgz, dest)
        assert md5 is None or md5 == hashlib.md5(dest.read_bytes()).hexdigest()

    import torchvision.datasets.utils as tv_utils

    # download_and_extract_archive looks download_url up in its own module
    monkeypatch.setattr(tv_utils, "download_url", fake_download_url)
    return {"batches": batches, "classes": tuple(names), "calls": calls}


def test_cifar10_download_path(tmp_path, fake_cifar_archive):
    root = tmp_path / "root"
    ds = load_dataset("cifar10", root=root, download=True)
    assert fake_cifar_archive["calls"] == ["https://example.invalid/cifar-10-python.tar.gz"]
    b = fake_cifar_archive["batches"]
    train_rows = np.concatenate([b["data_batch_1"][0], b["data_batch_2"][0]])
    assert torch.equal(ds.train.x, torch.from_numpy(train_rows.reshape(-1, 3, 32, 32)))
    assert torch.equal(ds.test.x, torch.from_numpy(b["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert ds.train.y.tolist() == b["data_batch_1"][1] + b["data_batch_2"][1]
    assert ds.test.y.tolist() == b["test_batch"][1] and ds.test.y.dtype == torch.int64
    assert ds.train.x.is_contiguous() and ds.train.x.dtype == torch.uint8
    assert ds.classes == fake_cifar_archive["classes"]
    assert (ds.name, ds.flip, ds.pad) == ("cifar10", True, 4)
    assert ds.source == str((root / "cifar-10-batches-py").resolve())

    # now present: loads without download and without fetching again
    again = load_dataset("cifar10", root=root)
    assert torch.equal(again.train.x, ds.train.x) and len(fake_cifar_archive["calls"]) == 1


def test_cifar10_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(PrunelabError, match="could not download CIFAR-10") as err:
        load_dataset("cifar10", root=tmp_path, download=True)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


# ---- the real shared data (skipped when absent) ----


@pytest.mark.skipif(not SUBSET.is_file(), reason="shared cifar10_subset.npz not present")
def test_shared_cifar10_subset(tmp_path):
    ds = load_dataset(str(SUBSET), cache_dir=tmp_path)
    assert ds.train.x.shape == (8336, 3, 32, 32) and ds.test.x.shape == (1017, 3, 32, 32)
    assert ds.test.y[:8].tolist() == [3, 8, 8, 0, 6, 6, 1, 6]
    assert ds.train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert torch.bincount(ds.test.y).tolist() == [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]
    assert ds.classes[3] == "cat"


@pytest.mark.skipif(
    not (FULL_JPEG.is_file() and SUBSET.is_file()), reason="shared CIFAR-10 files not present"
)
def test_shared_full_jpeg_keys_and_first_images():
    # reads the small arrays and the test buffer only; decoding all 60,000 is left to the timing run
    with np.load(FULL_JPEG) as z:
        assert set(data.JPEG_KEYS) <= set(z.files)
        assert len(z["train_offsets"]) == 50001 and len(z["test_offsets"]) == 10001
        assert z["y_test"][:8].tolist() == [3, 8, 8, 0, 6, 6, 1, 6]
        first = npz.decode_jpegs(z["test_jpeg"], z["test_offsets"][:9], "test")
    with np.load(SUBSET) as s:
        exact = s["x_test"][:8]
    assert first.shape == (8, 32, 32, 3)
    assert np.abs(first.astype(int) - exact.astype(int)).mean() < 10  # q75 JPEG: about 6


# ---- normalize and ImageSet ----


def test_normalize_values():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = normalize(x, mean=(0.0, 0.2, 0.5), std=(1.0, 0.5, 0.25))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0.0, 2.0]))


def test_normalize_matches_torchvision():
    from torchvision.transforms.functional import normalize as tv_normalize

    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    torch.testing.assert_close(normalize(x, mean, std), tv_normalize(x.float() / 255, mean, std))


def test_normalize_rejects_bad_input():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(PrunelabError, match="3 channels but mean has 1"):
        normalize(x, mean=(0.5,), std=(0.5,))
    with pytest.raises(PrunelabError, match="std must be > 0"):
        normalize(x, mean=(0.5,) * 3, std=(0.5, 0.0, 0.5))
    with pytest.raises(PrunelabError, match="uint8"):
        normalize(x.float(), mean=(0.5,) * 3, std=(0.5,) * 3)


def test_imageset_invariants():
    x = torch.zeros(4, 8, 8, 3, dtype=torch.uint8).permute(0, 3, 1, 2)  # a non-contiguous view
    s = ImageSet(x=x, y=torch.arange(4))
    assert s.x.is_contiguous() and len(s) == 4
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(x=x.float(), y=torch.arange(4))
    with pytest.raises(ValueError, match="int64"):
        ImageSet(x=x, y=torch.arange(3))


# ---- retraining on another training set ----


def test_training_set_keeps_exact_pixels_where_known(tmp_path):
    full = uint8_arrays(n_train=12, seed=1)
    np.savez_compressed(tmp_path / "full.npz", **full)
    index = np.array([7, 2, 9])
    subset = uint8_arrays(n_train=3, seed=2)
    subset["y_train"] = full["y_train"][index]  # the same images, other (exact) pixels
    np.savez_compressed(tmp_path / "subset.npz", **subset, train_index=index)

    exact = load_dataset(tmp_path / "subset.npz")
    assert exact.train_index.tolist() == [7, 2, 9]
    merged = data.with_training_set(exact, load_dataset(tmp_path / "full.npz"), "full.npz")
    assert torch.equal(merged.test.x, exact.test.x)  # the test split is untouched
    assert merged.train.y.tolist() == full["y_train"].tolist()
    want = chw(full["x_train"]).clone()
    want[index] = chw(subset["x_train"])
    assert torch.equal(merged.train.x, want)


def test_training_set_in_another_order_is_refused(tmp_path):
    full = uint8_arrays(n_train=12, seed=1)
    np.savez_compressed(tmp_path / "full.npz", **full)
    subset = uint8_arrays(n_train=3, seed=2)
    subset["y_train"] = (full["y_train"][[7, 2, 9]] + 1) % 10
    np.savez_compressed(tmp_path / "subset.npz", **subset, train_index=np.array([7, 2, 9]))
    with pytest.raises(PrunelabError, match="3 of the 3 images .* other labels"):
        data.with_training_set(load_dataset(tmp_path / "subset.npz"),
                               load_dataset(tmp_path / "full.npz"), "full.npz")


def test_training_set_of_other_images_is_refused(tmp_path, digits_set):
    np.savez_compressed(tmp_path / "c.npz", **uint8_arrays())
    with pytest.raises(PrunelabError, match=r"training data digits has \(1, 8, 8\)"):
        data.with_training_set(load_dataset(tmp_path / "c.npz"), digits_set, "digits")
