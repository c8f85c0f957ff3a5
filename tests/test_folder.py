"""--data FOLDER: an image folder in torchvision's layout, streamed, gives the counts the .npz of
the same pixels gives; calibration reads its train/ split; bad folders are one line."""

import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, run
from PIL import Image

from prunelab.data import load_dataset
from prunelab.experiment.store import Store


def write_split(root, x, y):
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")


@pytest.fixture(scope="module")
def same_pixels(tmp_path_factory, digits):
    """The digits as a uint8 .npz and as PNG folders (train/ and test/), pixel for pixel."""
    root = tmp_path_factory.mktemp("same")
    npz = root / "digits.npz"
    np.savez(npz, x_train=digits.train.x.permute(0, 2, 3, 1).numpy(), y_train=digits.train.y.numpy(),
             x_test=digits.test.x.permute(0, 2, 3, 1).numpy(), y_test=digits.test.y.numpy())
    write_split(root / "pngs" / "train", digits.train.x[:300], digits.train.y[:300])
    write_split(root / "pngs" / "test", digits.test.x, digits.test.y)
    return npz, root / "pngs"


def counts(folder):
    store = Store.open(folder)
    try:
        return {(p.method, p.target_sparsity): p.correct for p in store.points()}
    finally:
        store.close()


def test_a_folder_of_pngs_gives_the_counts_of_the_npz_of_the_same_pixels(digits_checkpoint, same_pixels,
                                                                         tmp_path, monkeypatch, capsys):
    npz, pngs = same_pixels
    for name, data in (("npz", npz), ("folder", pngs)):
        code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", data, "--methods",
                           "layerwise,global", "--levels", "0.5,0.9", "--device", "cpu",
                           "--out", tmp_path / name)
        assert code == 0, err
    assert counts(tmp_path / "npz") == counts(tmp_path / "folder")
    assert len(counts(tmp_path / "folder")) == 5


def test_calibration_reads_the_folders_train_split(digits_checkpoint, same_pixels, tmp_path, monkeypatch,
                                                   capsys):
    npz, pngs = same_pixels
    args = ("--methods", "obs-global", "--levels", "0.5", "--calibration", "200", "--device", "cpu")
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", pngs, *args,
                       "--out", tmp_path / "run")
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", pngs / "test", *args,
                       "--out", tmp_path / "no-train")
    assert_user_error(code, err, "no train/ split")


def test_a_lossy_export_of_a_folder_run_is_calibrated_on_train_and_scored_on_test(
        digits_checkpoint, same_pixels, tmp_path, monkeypatch, capsys):
    _, pngs = same_pixels
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", pngs, "--methods", "global",
                       "--levels", "0.5", "--device", "cpu", "--out", tmp_path / "run", "--no-report")
    assert code == 0, err
    code, stdout, err = run(monkeypatch, capsys, "export", tmp_path / "run", "--method", "global", "--level",
                            0.5, "--format", "onnx-int8", "--out", tmp_path / "m.onnx")
    assert code == 0, err
    file_top1, model_top1 = (float(v) for v in re.findall(r"([0-9.]+)%", stdout.split("test top-1 of")[1]))
    network = next(p for p in Store.open(tmp_path / "run").points() if p.method == "global")
    assert model_top1 == pytest.approx(network.top1, abs=0.005)  # scored on the folder's test/ split
    assert abs(file_top1 - model_top1) < 5  # int8, calibrated on the folder's train/ split


def test_bad_folders_are_one_line_naming_what(digits_checkpoint, digits, tmp_path, monkeypatch, capsys):
    def sweep(data, *more):
        return run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", data, "--methods", "global",
                   "--levels", "0.5", "--device", "cpu", "--out", tmp_path / "out", *more)

    (tmp_path / "empty").mkdir()
    assert_user_error(*sweep(tmp_path / "empty")[::2], "image folder")
    write_split(tmp_path / "ok", digits.test.x[:40], digits.test.y[:40])
    (tmp_path / "ok" / "class_extra").mkdir()  # a class folder with no image
    assert_user_error(*sweep(tmp_path / "ok")[::2], "class_extra")
    (tmp_path / "ok" / "class_extra").rmdir()
    (tmp_path / "ok" / "class1" / "broken.png").write_bytes(b"not a png")
    assert_user_error(*sweep(tmp_path / "ok")[::2], "broken.png")
    (tmp_path / "ok" / "class1" / "broken.png").unlink()
    assert_user_error(*sweep(tmp_path / "ok", "--methods", "global+ft")[::2], "no train/ split")
    assert_user_error(*sweep(tmp_path / "ok", "--methods", "global+bn")[::2], "no train/ split")
    assert_user_error(*sweep(tmp_path / "ok", "--methods", "global+ft", "--train-data", "digits")[::2],
                      "--train-data digits", "its own train/ split")
    assert not (tmp_path / "out" / "results.sqlite").exists()


@pytest.mark.slow
def test_a_five_class_64px_folder_and_a_torchvision_resnet18_go_through_sweep_report_and_export(
        tmp_path, monkeypatch, capsys):
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), tmp_path / "r18.pt")
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("val", 15)):
        for i in range(n):
            folder = tmp_path / "images" / split / f"kind{i % 5}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (72, 64, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    run_dir = tmp_path / "run"
    code, out, err = run(monkeypatch, capsys, "sweep", tmp_path / "r18.pt", "--model", "torchvision.resnet18",
                         "--data", tmp_path / "images", "--methods", "global", "--levels", "0.5",
                         "--device", "cpu", "--out", run_dir)
    assert code == 0, err
    assert {(p, n) for p, n in ((p.method, p.n_images) for p in Store.open(run_dir).points())} == \
        {("dense", 15), ("global", 15)}
    code, _, err = run(monkeypatch, capsys, "report", run_dir)
    assert code == 0 and (run_dir / "report" / "report.html").exists(), err
    code, out, err = run(monkeypatch, capsys, "export", run_dir, "--method", "global", "--level", "0.5",
                         "--format", "sparse", "--out", tmp_path / "g50.sparse")
    assert code == 0 and "bit-exact" in out, err


SHARED = Path(__file__).resolve().parents[2] / "shared"
RESNET20 = SHARED / "models" / "cifar10" / "resnet20-12fca82f.th"
SUBSET = SHARED / "data" / "cifar10" / "cifar10_subset.npz"


def same_cifar(root):
    """200 training and 150 test images of the exact CIFAR-10 subset, as a uint8 .npz and as PNG
    folders, the .npz written in ImageFolder's order (class by class), so both read them alike."""
    data = load_dataset(str(SUBSET))
    train, test = (sorted(range(n), key=lambda i, s=split: (int(s.y[i]), i))
                   for n, split in ((200, data.train), (150, data.test)))
    np.savez(root / "same.npz", x_train=data.train.x[train].permute(0, 2, 3, 1).numpy(),
             y_train=data.train.y[train].numpy(), x_test=data.test.x[test].permute(0, 2, 3, 1).numpy(),
             y_test=data.test.y[test].numpy())
    for split, idx, images in (("train", train, data.train), ("test", test, data.test)):
        for i in idx:
            folder = root / "pngs" / split / f"class{int(images.y[i])}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images.x[i].permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return root / "same.npz", root / "pngs"


CIFAR = pytest.mark.skipif(not (RESNET20.exists() and SUBSET.exists()), reason="../shared CIFAR files absent")


@pytest.mark.slow  # a pretrained ResNet-20 over 350 PNGs, twice: ~8 s
@CIFAR
@pytest.mark.parametrize("methods,options", [
    ("global,global+bn", ("--bn-batches", 3, "--train-batch-size", 50)),
    ("global+ft", ("--epochs", 1, "--train-batch-size", 50, "--lr", 0.01)),
])
def test_a_folders_train_split_recovers_a_point_as_the_npz_of_the_same_pixels(methods, options, tmp_path,
                                                                             monkeypatch, capsys):
    """+bn draws, crops and flips the same training images over the folder as over the .npz;
    +ft trains on them, decoded into memory, step for step alike: the counts are the same."""
    for name, source in zip(("npz", "folder"), same_cifar(tmp_path), strict=True):
        code, _, err = run(monkeypatch, capsys, "sweep", RESNET20, "--model", "resnet20", "--data", source,
                           "--methods", methods, "--levels", "0.7", *options, "--device", "cpu",
                           "--out", tmp_path / name, "--no-report")
        assert code == 0, err
    found = counts(tmp_path / "folder")
    assert counts(tmp_path / "npz") == found
    if "global,global+bn" == methods:
        assert found[("global+bn", 0.7)] != found[("global", 0.7)]  # the statistics were re-estimated


def test_retraining_over_a_folder_too_large_for_memory_is_one_line(digits_checkpoint, same_pixels, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.setattr("prunelab.experiment.workbench.memory_allowance", lambda: 1000)
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", same_pixels[1], "--methods",
                       "global+ft", "--levels", "0.5", "--device", "cpu", "--out", tmp_path / "run")
    assert_user_error(code, err, "300 of", "more than the", "+bn streams")
    assert not (tmp_path / "run" / "results.sqlite").exists()
